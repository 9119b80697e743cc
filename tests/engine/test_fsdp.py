"""FSDP2 over gloo on CPU: 2 processes train like 1 and each holds half the bytes."""

from __future__ import annotations

import json

import pytest
import torch
from engine_fixtures import TWO_PROCESS_SETTINGS

from vla_core.engine.metrics import read_metrics
from vla_core.models.weights import load_state_dict

# Chunks of 4 (lerobot_run_config's default) are padded near episode ends, so the ranks'
# micro-batches hold different numbers of valid actions: the head's `loss_weight` makes the
# 2-process loss the mean over the whole global batch all the same.
STEPS = TWO_PROCESS_SETTINGS["steps"]


@pytest.mark.slow
def test_two_processes_match_one_and_hold_half_the_bytes(two_process_run, one_process_run):
    # The same run on 2 processes and on 1 (conftest.py, shared with the checkpoint tests). Both
    # clip: max_grad_norm is below the gradient norm (~0.3), so clipping over the sharded
    # gradients is exercised too.
    clip = TWO_PROCESS_SETTINGS["max_grad_norm"]
    records_one, records_two = read_metrics(one_process_run), read_metrics(two_process_run)
    one, two = [r["loss"] for r in records_one], [r["loss"] for r in records_two]
    assert len(one) == len(two) == STEPS
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) < 1e-5, (one, two)
    assert len({round(loss, 6) for loss in one}) > 1  # the model trains: losses move
    for a, b in zip(records_one, records_two, strict=True):
        assert a["grad_norm"] > clip and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)

    # The checkpoint gathered from the shards holds the same weights as the 1-process run.
    # Except attention key biases: softmax ignores them, so their true gradient is 0 and
    # AdamW turns the ~1e-10 rounding noise of either run into lr-sized steps of random sign.
    weights_one = load_state_dict(one_process_run / f"checkpoints/step-{STEPS}")
    weights_two = load_state_dict(two_process_run / f"checkpoints/step-{STEPS}")
    assert weights_one.keys() == weights_two.keys()
    compared = [name for name in weights_one if not name.endswith("k_proj.bias")]
    assert len(compared) > 0.9 * len(weights_one)
    for name in compared:
        torch.testing.assert_close(weights_two[name], weights_one[name], atol=1e-5, rtol=0, msg=name)

    sizes = [json.loads((two_process_run.parent / f"shards-rank{r}.json").read_text()) for r in range(2)]
    full = sizes[0]["full_parameters"]
    for rank_sizes in sizes:
        # dim-0 shards of odd-sized tensors are uneven by a row: "about half".
        assert 0.4 * full < rank_sizes["parameters"] < 0.6 * full, rank_sizes
        # AdamW keeps two moments per trainable parameter; the vision pooling head is unused.
        assert 0.4 * 2 * full < rank_sizes["optimizer"] < 0.6 * 2 * full, rank_sizes
    assert sum(s["parameters"] for s in sizes) >= full
