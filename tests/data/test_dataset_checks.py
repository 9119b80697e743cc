"""A dataset is checked when opened: info.json against the data files (image and vector
shapes, row counts), and a video that cannot be decoded names the file, episode and time."""

from __future__ import annotations

import json
import shutil

import pytest

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.errors import DataError

WRIST_VIDEO = "videos/observation.images.wrist/chunk-000/file-000.mp4"
TOP_VIDEO = "videos/observation.images.top/chunk-000/file-000.mp4"
DATA_FILE = "data/chunk-000/file-000.parquet"


@pytest.fixture
def copy_of(tmp_path):
    def copy(root):
        target = tmp_path / "ds"
        shutil.copytree(root, target)
        return target

    return copy


def _edit_info(root, edit):
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))
    return path


def test_image_and_video_shapes_that_contradict_info_json(written_dataset, copy_of):
    root = copy_of(written_dataset[0])
    info = _edit_info(root, lambda i: i["features"]["observation.images.top"].update(shape=[64, 64, 3]))
    with pytest.raises(DataError) as raised:
        LeRobotDataset(str(root))
    message = str(raised.value)
    assert f"data file '{root / DATA_FILE}' holds 32x40 (height x width) frames for camera 'observation.images.top'"\
        in message and f"'{info}' declares shape [64, 64, 3]" in message

    _edit_info(root, lambda i: i["features"]["observation.images.top"].update(shape=[32, 40, 3]))
    _edit_info(root, lambda i: i["features"]["observation.images.wrist"].update(shape=[16, 16, 3]))
    with pytest.raises(DataError, match=rf"video '{root / WRIST_VIDEO}' holds 32x32 .* declares shape \[16, 16, 3\]"):
        LeRobotDataset(str(root))


def test_vector_shape_that_contradicts_the_data_names_the_file_not_the_model(written_dataset, copy_of):
    root = copy_of(written_dataset[0])
    _edit_info(root, lambda i: i["features"]["observation.state"].update(shape=[9]))
    with pytest.raises(DataError, match=rf"data file '{root / DATA_FILE}' column 'observation.state' holds 5 values "
                                        r"per frame, but .*info\.json' declares shape \[9\]"):
        LeRobotDataset(str(root))


def test_total_frames_that_contradicts_the_rows(written_dataset, copy_of):
    root = copy_of(written_dataset[0])
    _edit_info(root, lambda i: i.update(total_frames=50))
    with pytest.raises(DataError, match=rf"declares total_frames 50, but the data files hold 33 rows "
                                        rf"\('{root / DATA_FILE}' \(33 rows\)\)"):
        LeRobotDataset(str(root))
    LeRobotDataset(str(root), episodes=[0, 1])  # a subset does not read every file: not checked


def test_truncated_video_names_file_and_episode_when_opened(written_dataset, copy_of):
    root = copy_of(written_dataset[0])
    video = root / WRIST_VIDEO
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # the index (moov) is at the end: gone
    with pytest.raises(DataError, match=rf"camera 'observation.images.wrist', episode 0, frame 0 \(t=0.000s in the "
                                        rf"video\): video '{video}' could not be opened"):
        LeRobotDataset(str(root))


def test_half_cut_video_names_file_episode_and_time_when_read(v30_video_root, copy_of, vla_main, tmp_path):
    root = copy_of(v30_video_root)
    video = root / TOP_VIDEO
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # index first: the first frames decode
    dataset = LeRobotDataset(str(root))
    dataset[0]
    with pytest.raises(DataError) as raised:
        for index in range(len(dataset)):
            dataset[index]
    message = str(raised.value)
    assert message.startswith("camera 'observation.images.top', episode 1, frame 2 (t=1.400s in the video)")
    assert f"video '{video}' cannot be decoded at t=1.400s (InvalidDataError, " in message

    checkpoint = tmp_path / "ckpt"  # vla predict reads the frame with the checkpoint's data settings
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"format": "vla", "model": {}, "data": {
        "type": "LeRobotDataset"}}))
    code, _, err = vla_main("predict", str(checkpoint), "--dataset", str(root), "--index", str(index))
    assert code == 2 and "Traceback" not in err and err.count("Error:") == 1
    assert err.startswith("Error: camera 'observation.images.top', episode 1, frame 2 (t=1.400s in the video)")
