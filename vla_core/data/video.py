"""MP4 video: frame-accurate decoding at timestamps (PyAV) and incremental encoding.

Decoding. A frame of an inter-coded video can only be decoded after the keyframe before
it, so random access = seek to the keyframe at or before the target, decode forward. The
reader keeps each file's container open and its decoder position, so requests that move
forward a little (consecutive frames of an episode, action-chunk lookahead) continue
decoding instead of seeking again, and it keeps recently decoded frames in a byte-bounded
LRU cache keyed by frame number. Every returned frame is checked to be within
`tolerance_s` of the requested time; a seek that lands after the target (a broken
keyframe index, or AV1 "intra-only" frames marked as sync samples, which are not random
access points) falls back to decoding from the start of the file.

Decoders are single-threaded, so datasets holding open videos are safe to fork into
DataLoader workers. Frames are returned as uint8 (H, W, 3) RGB (`to_ndarray(format="rgb24")`, the same
conversion lerobot's pyav and torchcodec backends use).
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.errors import DataError

#: Decode forward instead of seeking when the target is at most this many frames ahead.
FORWARD_WINDOW = 32


class _OpenVideo:
    """One open container with its decoder position."""

    def __init__(self, path: Path) -> None:
        import av

        try:
            self.container = av.open(str(path))
        except (OSError, av.error.FFmpegError) as exc:
            raise DataError(
                f"video '{path}' could not be opened ({exc}); the dataset is incomplete or corrupt."
            ) from None
        if not self.container.streams.video:
            raise DataError(f"'{path}' has no video stream.")
        self.stream = self.container.streams.video[0]
        # One decoding thread: dav1d's worker threads do not survive fork(), and a DataLoader
        # worker that frees a decoder inherited from its parent would wait on them forever.
        # Parallelism comes from the DataLoader's workers instead.
        self.stream.codec_context.thread_count = 1
        self.time_base: Fraction = self.stream.time_base
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.decoder: Iterator[Any] | None = None
        self.last_time: float | None = None  # time (s) of the last decoded frame

    def seek(self, seconds: float) -> None:
        target = max(0, int(seconds / self.time_base))
        self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        self.decoder = self.container.decode(self.stream)
        self.last_time = None

    def rewind(self) -> None:
        self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
        self.decoder = self.container.decode(self.stream)
        self.last_time = None

    def close(self) -> None:
        self.container.close()


class VideoFrameReader:
    """Decode frames of MP4 files at given timestamps, with an LRU frame cache.

    Args:
        tolerance_s: a returned frame must be this close to the requested time.
        cache_mb: bytes of decoded frames to keep (all files together).
        max_open: open containers to keep (least recently used are closed).
    """

    def __init__(self, tolerance_s: float = 1e-4, cache_mb: float = 256, max_open: int = 16) -> None:
        self.tolerance_s = tolerance_s
        self.cache_bytes = int(cache_mb * 2**20)
        self.max_open = max_open
        self._open: OrderedDict[Path, _OpenVideo] = OrderedDict()
        # (file, frame number) -> (time in s, uint8 (H, W, 3))
        self._frames: OrderedDict[tuple[Path, int], tuple[float, np.ndarray]] = OrderedDict()
        self._cached_bytes = 0
        self._pid = os.getpid()
        # Containers opened before a fork (DataLoader workers): kept referenced, never closed.
        self._inherited: list[Any] = []
        self.stats = {"decoded": 0, "seeks": 0, "hits": 0}

    # Open containers cannot cross process boundaries (DataLoader workers): reopen lazily.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"], state["_frames"], state["_cached_bytes"] = OrderedDict(), OrderedDict(), 0
        state["_inherited"] = []
        return state

    def close(self) -> None:
        for video in self._open.values():
            video.close()
        self._open.clear()
        self._frames.clear()
        self._cached_bytes = 0

    def frames(self, path: str | Path, timestamps: list[float], where: str = "") -> list[np.ndarray]:
        """uint8 (H, W, 3) frames closest to each timestamp (seconds from the file start).

        `where` (e.g. "episode 3, frame 12") is added to a DataError about a file that
        cannot be opened or decoded, which names the file and the time in it."""
        path = Path(path)
        try:
            return self._frames_at(path, timestamps)
        except DataError as exc:
            if not where:
                raise
            raise DataError(f"{where}: {exc}") from None

    def _frames_at(self, path: Path, timestamps: list[float]) -> list[np.ndarray]:
        import av

        video = self._video(path)
        fps = video.fps or 1.0 / float(video.time_base)
        out = []
        for ts in timestamps:
            cached = self._frames.get((path, round(ts * fps)))
            if cached is not None and abs(cached[0] - ts) < self.tolerance_s:
                self._frames.move_to_end((path, round(ts * fps)))
                self.stats["hits"] += 1
                out.append(cached[1].copy())  # callers may write into their frames
                continue
            try:
                out.append(self._decode_until(path, video, ts, fps).copy())
            except (av.error.FFmpegError, OSError) as exc:
                # A cut or corrupt file: PyAV raises InvalidDataError (or EOFError/OSError) mid-decode.
                self._forget(path)
                raise DataError(
                    f"video '{path}' cannot be decoded at t={ts:.3f}s ({type(exc).__name__}, {exc}); the file is "
                    "truncated or corrupt. Re-encode or restore it, or leave out the episodes stored in it "
                    "(`data.episodes`)."
                ) from None
        return out

    def _forget(self, path: Path) -> None:
        """Close a container whose decoder failed, so the next request starts afresh."""
        video = self._open.pop(path, None)
        if video is not None:
            with contextlib.suppress(Exception):
                video.close()

    def _video(self, path: Path) -> _OpenVideo:
        if self._pid != os.getpid():
            # Forked after opening: the handles belong to the parent. Freeing them here would join
            # decoder threads that do not exist in this process (a hang), so keep them referenced.
            self._inherited.append(self._open)
            self._open, self._frames, self._cached_bytes, self._pid = OrderedDict(), OrderedDict(), 0, os.getpid()
        video = self._open.get(path)
        if video is None:
            if not path.is_file():
                raise DataError(f"video file '{path}' is missing; the dataset is incomplete.")
            video = _OpenVideo(path)
            self._open[path] = video
            while len(self._open) > self.max_open:
                _, old = self._open.popitem(last=False)
                old.close()
        self._open.move_to_end(path)
        return video

    def _decode_until(self, path: Path, video: _OpenVideo, ts: float, fps: float) -> np.ndarray:
        ahead = video.last_time is not None and video.last_time < ts <= video.last_time + FORWARD_WINDOW / fps
        if not ahead:
            video.seek(ts)
            self.stats["seeks"] += 1
        best = self._scan(path, video, ts, fps)
        if best is None:  # the seek landed after the target: decode from the start instead
            video.rewind()
            best = self._scan(path, video, ts, fps)
        if best is None or abs(best[0] - ts) >= self.tolerance_s:
            got = "no frame" if best is None else f"the closest frame is at {best[0]:.6f}s"
            raise DataError(
                f"video '{path}' has no frame within {self.tolerance_s}s of t={ts:.6f}s ({got}). The video and the "
                "parquet timestamps disagree (a corrupt or re-encoded video?); raise `tolerance_s` only if the "
                "offset is known to be harmless."
            )
        return best[1]

    def _scan(self, path: Path, video: _OpenVideo, ts: float, fps: float) -> tuple[float, np.ndarray] | None:
        """Decode forward until the frame at `ts` (or the first one after it); None when the
        first decoded frame is already later than `ts` (the decoder cannot go back)."""
        assert video.decoder is not None
        best: tuple[float, np.ndarray] | None = None
        first = True
        for frame in video.decoder:
            if frame.pts is None:
                continue
            time = float(frame.pts * video.time_base)
            video.last_time = time
            array = frame.to_ndarray(format="rgb24")
            self.stats["decoded"] += 1
            self._remember(path, round(time * fps), time, array)
            if first and time > ts + self.tolerance_s:
                return None
            first = False
            if best is None or abs(time - ts) < abs(best[0] - ts):
                best = (time, array)
            if time >= ts - self.tolerance_s:
                break
        return best

    def _remember(self, path: Path, number: int, time: float, array: np.ndarray) -> None:
        key = (path, number)
        if key in self._frames:
            return
        self._frames[key] = (time, array)
        self._cached_bytes += array.nbytes
        while self._cached_bytes > self.cache_bytes and self._frames:
            _, (_, old) = self._frames.popitem(last=False)
            self._cached_bytes -= old.nbytes


class VideoEncoder:
    """Append RGB frames to one MP4 file with PyAV; frame k gets the time k / fps.

    Args:
        path: output .mp4.
        fps: frames per second.
        width/height: frame size (even sizes for yuv420p).
        codec: "libsvtav1" (AV1, lerobot's default), "h264"/"libx264", "hevc", "mpeg4", ...
        pix_fmt: "yuv420p" (widest support) or e.g. "yuv444p" where the codec allows.
        gop: frames between keyframes; small = faster random access, larger files (lerobot uses 2).
        crf: quality (lower = better) for codecs that take it.
    """

    def __init__(
        self,
        path: Path,
        fps: int,
        width: int,
        height: int,
        codec: str = "libsvtav1",
        pix_fmt: str = "yuv420p",
        gop: int = 2,
        crf: int | None = 30,
    ) -> None:
        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr unless told otherwise
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {"g": str(gop)}
        if crf is not None and codec not in ("mpeg4",):
            options["crf"] = str(crf)
        if codec in ("h264", "libx264", "hevc", "libx265"):
            options["bf"] = "0"  # no B-frames: decode order = display order, so episodes append cleanly
        try:
            self.container = av.open(str(path), "w")
            self.stream = self.container.add_stream(codec, rate=fps, options=options)
        except (av.error.FFmpegError, ValueError) as exc:
            raise DataError(
                f"cannot encode video with codec '{codec}' ({exc}). Codecs that work with this PyAV build include "
                "libsvtav1, h264 and mpeg4; or store images inline (dtype 'image')."
            ) from None
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        # Frames are stamped in 1/fps units. Not `self.stream.time_base`: the muxer replaces it
        # (e.g. 1/10240 for mp4) when it writes the header, and frames stamped with the new base
        # after that would be rescaled to the wrong time.
        self.time_base = Fraction(1, fps)
        self.stream.time_base = self.time_base
        self.num_frames = 0

    def add(self, rgb: np.ndarray) -> None:
        """Append one uint8 (H, W, 3) frame."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.num_frames
        frame.time_base = self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.num_frames += 1

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()


class VideoAppender:
    """Append whole encoded episodes to one MP4 by copying their packets (no re-encoding),
    shifting their timestamps so each starts where the previous one ended, as lerobot's
    concatenation does. Every episode file must come from the same encoder settings.

    Args:
        path: the shared output .mp4.
        fps: frames per second (an episode of n frames occupies n / fps seconds).
    """

    def __init__(self, path: Path, fps: int) -> None:
        self.path, self.fps = path, fps
        self.container: Any = None
        self.stream: Any = None
        self.num_frames = 0  # frames appended so far; the next episode starts at num_frames / fps
        self.num_bytes = 0
        self._last_dts = -(2**62)

    def append(self, episode_file: Path, num_frames: int) -> float:
        """Append an episode's mp4; returns its start time (s) in the shared file."""
        import av

        start = self.num_frames / self.fps
        with av.open(str(episode_file)) as source:
            stream = source.streams.video[0]
            if self.container is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.container = av.open(str(self.path), "w")
                self.stream = self.container.add_stream_from_template(stream, opaque=True)
            offset = round(start / stream.time_base)
            for packet in source.demux(stream):
                if packet.dts is None:  # the demuxer's final empty packet
                    continue
                packet.pts += offset
                packet.dts += offset
                if packet.dts <= self._last_dts:
                    raise DataError(
                        f"appending '{episode_file}' to '{self.path}' would reorder decoding timestamps; encode "
                        "episodes without B-frames (the writer's default settings do)."
                    )
                self._last_dts = packet.dts
                packet.stream = self.stream
                self.container.mux(packet)
                self.num_bytes += packet.size
        self.num_frames += num_frames
        return start

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
