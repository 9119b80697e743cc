"""The data order (a pure function of seed and step) and the optimizer's groups and schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vla_core.config.run import TrainConfig
from vla_core.engine.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups
from vla_core.engine.sampler import GlobalBatchSampler
from vla_core.errors import ConfigError


def test_ranks_split_the_same_global_batches_as_one_process():
    one = GlobalBatchSampler(20, batch_size=4, seed=3, end_step=10)
    ranks = [GlobalBatchSampler(20, 4, world_size=2, rank=r, seed=3, end_step=10) for r in range(2)]
    for step, batch in enumerate(one):
        assert (batch.step, batch.micro_step) == (step, 0)
        halves = [r.keys(step, 0) for r in ranks]
        assert halves[0] + halves[1] == batch.keys and len(halves[0]) == 2
    # with accumulation the micro-batches tile the same global batch
    accum = GlobalBatchSampler(20, 4, grad_accum_steps=2, seed=3, end_step=10)
    assert [accum.keys(s, 0) + accum.keys(s, 1) for s in range(10)] == [b.keys for b in one]


def test_epochs_cover_the_data_and_resuming_continues_the_same_order():
    sampler = GlobalBatchSampler(10, batch_size=3, seed=0, end_step=9)  # 3 steps per epoch, 1 sample dropped
    batches = [b.keys for b in sampler]
    for epoch in range(3):
        keys = [key for batch in batches[3 * epoch : 3 * epoch + 3] for key in batch]
        assert len({i for _, i in keys}) == 9 and {e for e, _ in keys} == {epoch}
    assert batches[0] != batches[3]  # a new permutation each epoch
    assert [b.keys for b in GlobalBatchSampler(10, 3, seed=0, start_step=4, end_step=9)] == batches[4:]
    assert [b.keys for b in GlobalBatchSampler(10, 3, seed=1, end_step=9)] != batches


def test_batch_size_must_split_over_micro_batches_and_ranks():
    with pytest.raises(ConfigError, match=r"^train\.batch_size: is 6"):
        GlobalBatchSampler(100, 6, grad_accum_steps=2, world_size=2)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.scale = nn.Parameter(torch.ones(4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_no_weight_decay_on_biases_norms_and_1d_parameters_and_frozen_ones_left_out():
    block = Block()
    decay, no_decay = parameter_groups(block, weight_decay=0.1)
    assert decay["params"] == [block.linear.weight] and decay["weight_decay"] == 0.1
    assert {id(p) for p in no_decay["params"]} == {id(block.linear.bias), id(block.norm.weight),
                                                    id(block.norm.bias), id(block.scale)}
    assert no_decay["weight_decay"] == 0.0
    block.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer(block, TrainConfig())


def test_warmup_then_cosine_to_the_floor():
    train = TrainConfig(steps=10, warmup_steps=2, lr=1.0, min_lr_ratio=0.1)
    factor = lr_factor(train)
    assert [factor(0), factor(1)] == [0.5, 1.0]
    assert factor(2) == pytest.approx(1.0)
    assert factor(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(10) == pytest.approx(0.1)
    assert lr_factor(TrainConfig(steps=10, schedule="constant"))(7) == 1.0

    optimizer = build_optimizer(nn.Linear(2, 2), train)
    scheduler = build_scheduler(optimizer, train)
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([factor(s) for s in range(10)])


def test_a_resumed_run_follows_the_current_configs_lr_schedule_and_adamw_settings(synthetic, tmp_path):
    from engine_fixtures import run_config, train

    from vla_core.engine.metrics import read_metrics
    from vla_core.engine.optim import lr_factor

    config = run_config(tmp_path, steps=2, save_every=2, lr=1e-3, warmup_steps=1)
    train(config)
    config["train"].update(steps=4, lr=5e-4, weight_decay=0.05, betas=[0.8, 0.9])
    trainer, _ = train(config, resume="auto")
    expected = lr_factor(trainer.train_config)
    assert [r["lr"] for r in read_metrics(tmp_path)][2:] == pytest.approx([5e-4 * expected(s) for s in (2, 3)])
    decay = next(g for g in trainer.optimizer.param_groups if g["decay"])
    assert decay["weight_decay"] == 0.05 and tuple(decay["betas"]) == (0.8, 0.9)
