"""VideoFrameReader: frame-accurate random access equals sequential decoding."""

from __future__ import annotations

import av
import numpy as np
import pytest

from vla_core.data import video
from vla_core.data.video import VideoFrameReader
from vla_core.errors import DataError

TOP = "videos/observation.images.top/chunk-000/file-000.mp4"


def sequential_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_random_access_equals_sequential_decoding(v30_video_root):
    path = v30_video_root / TOP
    reference = sequential_frames(path)
    reader = VideoFrameReader(cache_mb=0)  # no cache: every frame is sought and decoded
    order = np.random.default_rng(0).permutation(len(reference))
    for i in order:
        np.testing.assert_array_equal(reader.frames(path, [i / 10])[0], reference[i])
    assert reader.stats["seeks"] > len(reference) // 2  # random order needs seeks (GOP of 2 frames)


def test_forward_reads_continue_decoding_and_hit_the_cache(v30_video_root):
    path = v30_video_root / TOP
    reference = sequential_frames(path)
    reader = VideoFrameReader()
    frames = reader.frames(path, [i / 10 for i in range(len(reference))])
    for got, want in zip(frames, reference, strict=True):
        np.testing.assert_array_equal(got, want)
    assert reader.stats["seeks"] == 1 and reader.stats["decoded"] == len(reference)  # one pass
    reader.frames(path, [0.5, 0.6])
    assert reader.stats["hits"] == 2 and reader.stats["decoded"] == len(reference)
    frames[0][:] = 0  # callers own their copies
    np.testing.assert_array_equal(reader.frames(path, [0.0])[0], reference[0])


def test_a_seek_that_lands_late_falls_back_to_the_start(v30_video_root, monkeypatch):
    """AV1 "intra-only" frames can be marked as sync samples without being random access
    points; a seek that lands after the target must not return a wrong frame."""
    path = v30_video_root / TOP
    reference = sequential_frames(path)
    original = video._OpenVideo.seek
    monkeypatch.setattr(video._OpenVideo, "seek", lambda self, seconds: original(self, seconds + 0.5))
    reader = VideoFrameReader(cache_mb=0)
    for i in (3, 17, 30):
        np.testing.assert_array_equal(reader.frames(path, [i / 10])[0], reference[i])


def test_a_time_with_no_frame_is_an_error(v30_video_root):
    reader = VideoFrameReader(tolerance_s=1e-4)
    with pytest.raises(DataError, match=r"no frame within 0\.0001s of t=0\.150000s"):
        reader.frames(v30_video_root / TOP, [0.15])
    with pytest.raises(DataError, match=r"closest frame is at 3\.500000s"):
        reader.frames(v30_video_root / TOP, [9.0])


def test_cache_is_bounded(v30_video_root):
    reader = VideoFrameReader(cache_mb=64 * 64 * 3 * 4 / 2**20)  # room for 4 frames
    reader.frames(v30_video_root / TOP, [i / 10 for i in range(36)])
    assert len(reader._frames) == 4 and reader._cached_bytes == 4 * 64 * 64 * 3
