"""CheckpointDirectory: what a save interrupted by a crash leaves behind is cleaned up without
losing a checkpoint."""

from __future__ import annotations

from pathlib import Path

from vla_core.engine.checkpoint import STATE_DIR, STATE_NAME, CheckpointDirectory


def _complete(path: Path, marker: str) -> Path:
    (path / STATE_DIR).mkdir(parents=True)
    (path / STATE_DIR / STATE_NAME).write_text(marker)
    return path


def test_a_crash_between_the_two_renames_of_a_resave_keeps_the_old_checkpoint(tmp_path):
    # atomic_directory re-saving step-4: step-4 -> .step-4.old-*, then .step-4.tmp-* -> step-4.
    # Killed between the two renames, step-4 is absent and its only copy is the .old sibling.
    checkpoints = CheckpointDirectory(tmp_path)
    _complete(checkpoints.root / ".step-4.old-1a2b3c4d", "previous")
    _complete(checkpoints.root / ".step-4.tmp-5e6f7a8b", "unfinished")
    _complete(checkpoints.root / "step-2", "older")
    checkpoints.remove_temporaries()
    assert sorted(p.name for p in checkpoints.root.iterdir()) == ["step-2", "step-4"]
    assert (checkpoints.path(4) / STATE_DIR / STATE_NAME).read_text() == "previous"
    assert checkpoints.latest() == checkpoints.path(4)


def test_leftovers_next_to_a_complete_checkpoint_are_removed(tmp_path):
    checkpoints = CheckpointDirectory(tmp_path)
    _complete(checkpoints.path(4), "new")
    _complete(checkpoints.root / ".step-4.old-1a2b3c4d", "replaced")  # killed before the old copy was deleted
    _complete(checkpoints.root / ".step-6.tmp-5e6f7a8b", "half-written")
    checkpoints.remove_temporaries()
    assert [p.name for p in checkpoints.root.iterdir()] == ["step-4"]
    assert (checkpoints.path(4) / STATE_DIR / STATE_NAME).read_text() == "new"


def test_metrics_of_a_killed_run_are_cut_back_to_the_resumed_step(tmp_path):
    # What a SIGKILL leaves: records past the last checkpoint and a torn last line.
    from vla_core.engine.metrics import JsonlMetrics, read_metrics

    lines = [f'{{"step": {step}, "loss": {1.0 / step}}}' for step in range(1, 7)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 7, "lo')
    metrics = JsonlMetrics(tmp_path, resume_step=4)
    metrics.log(5, {"loss": 0.5})
    metrics.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path)] == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25),
                                                                        (5, 0.5)]
    JsonlMetrics(tmp_path).close()  # a fresh run starts an empty file
    assert read_metrics(tmp_path) == []
