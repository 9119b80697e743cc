"""LeRobotDataset sample throughput: AV1 video and inline PNG cameras, in order and shuffled.

    .venv/bin/python benchmarks/data_loading.py [--episodes 8] [--frames 100] [--size 128] [--clock wall|cpu]

Writes a LeRobot v3.0 dataset with our LeRobotWriter into a temp dir (one AV1 camera,
libsvtav1 with lerobot's settings: yuv420p, GOP 2, crf 30, all episodes in one mp4; and one
PNG camera inline in the parquet), then times `dataset[i]` (both camera images, state,
an action chunk of 10) over every frame, in dataset order and in a shuffled order.

Reference for video, measured in the same run: lerobot's pyav path per sample
(`decode_video_frames_torchvision(..., backend="pyav")`, re-implemented here with PyAV
because lerobot cannot be installed next to this torch): open the file, seek to the
keyframe before the timestamp, decode and convert frames up to it, close. Ours keeps the
container open, continues decoding forward when the target is just ahead, and caches
decoded frames; the ratio is ours / reference in samples per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.lerobot_writer import LeRobotWriter

CAMERA_VIDEO = "observation.images.front"
CAMERA_PNG = "observation.images.wrist"


def make_image(episode: int, frame: int, size: int) -> np.ndarray:
    """Smooth gradients with a moving square: compresses like a simple camera view."""
    y, x = np.mgrid[0:size, 0:size]
    image = np.stack([(x * 255 // size), (y * 255 // size), np.full_like(x, (40 * episode) % 256)], -1)
    cy, cx = (3 * frame) % (size - 16), (5 * frame + 7 * episode) % (size - 16)
    image[cy : cy + 16, cx : cx + 16] = 255
    return image.astype(np.uint8)


def write_dataset(root: Path, episodes: int, frames: int, size: int) -> None:
    features = {
        CAMERA_VIDEO: {"dtype": "video", "shape": [size, size, 3]},
        CAMERA_PNG: {"dtype": "image", "shape": [size, size, 3]},
        "observation.state": {"dtype": "float32", "shape": [8]},
        "action": {"dtype": "float32", "shape": [7]},
    }
    rng = np.random.default_rng(0)
    with LeRobotWriter.create(root, fps=10, features=features, robot_type="bench") as writer:
        for episode in range(episodes):
            for frame in range(frames):
                writer.add_frame(
                    {
                        CAMERA_VIDEO: make_image(episode, frame, size),
                        CAMERA_PNG: make_image(episode + 100, frame, size),
                        "observation.state": rng.normal(size=8),
                        "action": rng.normal(size=7),
                        "task": f"task {episode % 3}",
                    }
                )
            writer.save_episode()


def lerobot_pyav_frame(path: str, timestamp: float, tolerance_s: float = 1e-4) -> np.ndarray:
    """lerobot's per-sample pyav decode: open, keyframe seek, decode to the timestamp, close."""
    container = av.open(path)
    stream = container.streams.video[0]
    container.seek(int(timestamp / stream.time_base), stream=stream, backward=True, any_frame=False)
    loaded, times = [], []
    for frame in container.decode(stream):
        current = float(frame.pts * stream.time_base)
        loaded.append(frame.to_ndarray(format="rgb24"))
        times.append(current)
        if current >= timestamp:
            break
    container.close()
    best = int(np.argmin(np.abs(np.asarray(times) - timestamp)))
    assert abs(times[best] - timestamp) < tolerance_s
    return loaded[best]


def read(dataset: LeRobotDataset, indices: np.ndarray) -> None:
    for i in indices:
        dataset[int(i)]


def timed(clock: str, fn, count: int) -> float:
    now = time.process_time if clock == "cpu" else time.perf_counter
    start = now()
    fn()
    return count / (now() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        start = time.perf_counter()
        write_dataset(root, args.episodes, args.frames, args.size)
        write_s = time.perf_counter() - start
        n = args.episodes * args.frames
        order = {"in order": np.arange(n), "shuffled": np.random.default_rng(0).permutation(n)}
        video_only = {"cameras": [CAMERA_VIDEO]}
        png_only = {"cameras": [CAMERA_PNG]}
        rows = []
        for name, indices in order.items():
            # reference: lerobot's per-sample pyav decode of the same frames (video camera only)
            ds = LeRobotDataset(str(root), chunk_size=10, embodiment=video_only)
            episodes = {e.index: e for e in ds.episodes}

            def reference(ds=ds, episodes=episodes, indices=indices) -> None:
                for i in indices:
                    sample_episode = int(ds.column("episode_index")[i])
                    path, start_ts = episodes[sample_episode].videos[CAMERA_VIDEO]
                    lerobot_pyav_frame(str(path), start_ts + float(ds.column("timestamp")[i]))

            ref = timed(args.clock, reference, n)
            rows.append((f"AV1 video, {name}", timed(args.clock, lambda d=ds, ix=indices: read(d, ix), n), ref))
            if name == "shuffled":  # every sample a cache miss: seek + decode from the keyframe
                uncached = LeRobotDataset(str(root), chunk_size=10, embodiment=video_only, video_cache_mb=0)
                rows.append(
                    (
                        "AV1 video, shuffled, no frame cache",
                        timed(args.clock, lambda d=uncached, ix=indices: read(d, ix), n),
                        ref,
                    )
                )
            png = LeRobotDataset(str(root), chunk_size=10, embodiment=png_only)
            rows.append((f"inline PNG, {name}", timed(args.clock, lambda d=png, ix=indices: read(d, ix), n), None))
        # equality: our decoded frames are lerobot's
        ds = LeRobotDataset(str(root), embodiment=video_only)
        for i in (0, n // 2, n - 1):
            path, start_ts = ds.episodes[int(ds.column("episode_index")[i])].videos[CAMERA_VIDEO]
            want = lerobot_pyav_frame(str(path), start_ts + float(ds.column("timestamp")[i]))
            assert np.array_equal(ds[i]["images"][CAMERA_VIDEO], want)
    print(
        f"dataset: {args.episodes} episodes x {args.frames} frames, {args.size}x{args.size} px, "
        f"written in {write_s:.1f} s ({n / write_s:.0f} frames/s incl. AV1 + PNG encoding)"
    )
    print(f"{'read (one camera + state + 10 actions)':42s} {'ours/s':>9s} {'ref/s':>9s} {'ratio':>7s}")
    for name, ours, ref in rows:
        ref_text, ratio = (f"{ref:9.0f}", f"{ours / ref:7.2f}") if ref else (f"{'-':>9s}", f"{'-':>7s}")
        print(f"{name:42s} {ours:9.0f} {ref_text} {ratio}")


if __name__ == "__main__":
    main()
