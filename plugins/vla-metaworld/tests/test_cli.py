"""`vla data generate` and `vla eval` end to end on Meta-World, with a freshly built tiny policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vla_core.cli import main
from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.processor import VLAProcessor
from vla_core.engine.checkpoint import STATE_DIR, STATE_NAME
from vla_core.models.build import build_vla
from vla_core.testing import tiny_vla_spec


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset made by `vla data generate` and an untrained tiny VLA checkpoint fitted to it."""
    root = tmp_path_factory.mktemp("cli")
    main_args = ["data", "generate", "--env", "metaworld", "--tasks", "drawer-close", "--episodes", "1",
                 "--image-size", "32", "--out", str(root / "data")]
    try:
        main(main_args)
    except SystemExit as exc:
        assert exc.code in (0, None)
    processor_spec = {"type": "VLAProcessor", "image_size": 32, "max_state_dim": 4, "max_action_dim": 4,
                      "chunk_size": 4, "max_lang_len": 8}
    processor = VLAProcessor(**{k: v for k, v in processor_spec.items() if k != "type"})
    processor.fit(LeRobotDataset(str(root / "data"), chunk_size=4))
    spec = tiny_vla_spec(head={"type": "MLPActionHead", "input_dim": 48, "action_dim": 4, "chunk_size": 4,
                               "state_dim": 4, "hidden_dim": 32})
    spec["processor"] = processor_spec
    torch.manual_seed(0)
    vla = build_vla(spec)
    checkpoint = root / "run" / "checkpoints" / "step-1"
    vla.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    (checkpoint / STATE_DIR).mkdir()  # how `vla train` marks a complete checkpoint
    (checkpoint / STATE_DIR / STATE_NAME).write_text("{}")
    return root


def test_eval_reports_a_boolean_success_per_episode_with_baselines_and_videos(
    tiny_run: Path, capsys: pytest.CaptureFixture
) -> None:
    videos = tiny_run / "videos"
    code, out, err = run(
        capsys, "eval", str(tiny_run / "run"), "--env", "metaworld", "--tasks", "drawer-close",  # its latest checkpoint
        "--episodes", "2", "--max-steps", "12", "--image-size", "32", "-k", "2", "--baselines", "random,expert",
        "--json", "--video", str(videos), "--video-format", "gif", "--videos-per-task", "1",
    )
    assert code == 0, err
    report = json.loads(out)
    assert list(report["policies"]) == ["policy", "random", "expert"] and report["execute_steps"] == 2
    for result in report["policies"].values():
        assert [e["seed"] for e in result["episodes"]] == [1000, 1001]
        assert all(isinstance(e["success"], bool) and 1 <= e["steps"] <= 12 for e in result["episodes"])
    assert sorted(p.parent.name for p in videos.rglob("*.gif")) == ["expert", "policy", "random"]


def test_eval_table_and_errors(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "eval", "expert", "--tasks", "reach", "--episodes", "1", "--image-size", "16")
    assert code == 0 and "reach-v3" in out and "1/1 100% [21-100]" in out
    code, _, err = run(capsys, "eval", "expert", "--tasks", "reach,drawer-clse")
    assert code == 2 and "Unknown Meta-World task 'drawer-clse'. Did you mean 'drawer-close'" in err
    code, _, err = run(capsys, "eval", "expert", "--env", "mujoco-world", "--tasks", "reach")
    assert code == 2 and "Unknown envs component 'mujoco-world'" in err and "MetaWorld (vla-metaworld)" in err
