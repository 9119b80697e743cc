"""Write rollout frames as an MP4 (H.264) or GIF with PyAV, so people can watch episodes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vla_core.errors import EnvError


def upscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of a (H, W, 3) uint8 frame: a 64 px policy view stays crisp."""
    if factor == 1:
        return frame
    return np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 20, scale: int = 1) -> Path:
    """Encode uint8 (H, W, 3) frames to `path`; the suffix picks the format (.mp4 or .gif).

    The file is written next to its final name and renamed, so a crash leaves no partial video.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".mp4", ".gif"}:
        raise EnvError(f"videos are written as .mp4 or .gif, not '{suffix}' ({path}).")
    if not frames:
        raise EnvError(f"no frames to write to {path}.")
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    first = upscale(np.asarray(frames[0]), scale)
    height, width = first.shape[:2]
    with av.open(str(tmp), mode="w") as container:
        if suffix == ".mp4":
            stream = container.add_stream("libx264", rate=fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "23", "preset": "veryfast"}
            height, width = height - height % 2, width - width % 2  # yuv420p needs even sides
        else:
            stream = container.add_stream("gif", rate=fps)
            stream.pix_fmt = "rgb8"
        stream.width, stream.height = width, height
        for frame in frames:
            image = np.ascontiguousarray(upscale(np.asarray(frame, dtype=np.uint8), scale)[:height, :width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path
