"""Run a training in a fresh process (optionally under torchrun) with the synthetic test
components registered. Used by the FSDP and kill-and-resume tests.

    python train_script.py CONFIG.json [--resume auto] [--sleep-after STEP] [--shards OUT_PREFIX]
        [--hang-in-save STEP] [--launch NPROC]

--sleep-after STEP: sleep 0.5 s after every step past STEP (so a test can kill the run
between checkpoints); --shards: each rank writes the bytes of parameters and optimizer
state it holds after the first step to OUT_PREFIX-rank<R>.json; --hang-in-save STEP: once
every rank wrote its shards of the step-STEP checkpoint (before it is complete), write
each rank's pid to `<output_dir>/in-save-rank<R>` and hang, so a test can kill the run mid-save.
--hang-in-async-commit STEP (with train.async_save): each rank writes its pid to
`<output_dir>/pid-rank<R>` when training starts; rank 0's background thread, once every
rank's shards of the step-STEP checkpoint are written, writes `<output_dir>/in-commit` and
hangs before the checkpoint is complete, while training goes on. The dataset
`FailingOnRank` (registered here) has a corrupt sample on one rank. A failure is recorded
for the launcher as the `vla` CLI records it (`rank_failures.record_exception`);
--launch NPROC runs the script on NPROC processes through `vla train --nproc`'s launcher.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import engine_fixtures
import torch

from vla_core import registry
from vla_core.config.run import validate_run_config
from vla_core.engine.fsdp import local_shard_bytes
from vla_core.engine.trainer import Trainer
from vla_core.plugin_manager import new_plugin_manager


class TestCallbacks:
    def __init__(self, sleep_after: int | None, shards: str | None) -> None:
        self.sleep_after, self.shards = sleep_after, shards

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict) -> None:
        if self.shards and step == 1:
            sizes = local_shard_bytes(trainer.model, trainer.optimizer)
            sizes["full_parameters"] = sum(p.numel() * p.element_size() for p in trainer.vla.parameters())
            with open(f"{self.shards}-rank{trainer.context.rank}.json", "w") as handle:
                json.dump(sizes, handle)
        if self.sleep_after is not None and step > self.sleep_after:
            time.sleep(0.5)


class RecordPid:
    def on_train_start(self, trainer: Trainer) -> None:
        (trainer.output_dir / f"pid-rank{trainer.context.rank}").write_text(str(os.getpid()))


def hang_in_async_commit(step: int) -> None:
    """Patch the background commit so the step-`step` checkpoint is never completed."""
    from vla_core.engine import async_checkpoint

    original = async_checkpoint.commit_checkpoint

    def hang_then_commit(stack, tmp):
        if tmp.name.startswith(f".step-{step}.tmp-"):
            (tmp.parent.parent / "in-commit").write_text(str(step))
            time.sleep(600)
        original(stack, tmp)

    async_checkpoint.commit_checkpoint = hang_then_commit


def hang_in_save(step: int) -> None:
    """Patch the sharded save so the step-`step` checkpoint is left half-done forever."""
    from vla_core.engine import sharded_checkpoint

    original = sharded_checkpoint.save_sharded

    def save_then_hang(model, optimizer, directory, state_dir):
        original(model, optimizer, directory, state_dir)
        if directory.name.startswith(f".step-{step}.tmp-"):
            # torchrun starts each worker in its own session: the test kills us by these pids.
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            (directory.parent.parent / f"in-save-rank{rank}").write_text(str(os.getpid()))
            time.sleep(600)

    sharded_checkpoint.save_sharded = save_then_hang


class FailingOnRank(engine_fixtures.SyntheticRobotDataset):
    """The synthetic dataset, with a corrupt sample on one rank from the second step on."""

    def __init__(self, fail_rank: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_rank, self.reads = fail_rank, 0

    def __getitem__(self, index: int) -> dict:
        self.reads += 1
        if int(os.environ.get("RANK", "0")) == self.fail_rank and self.reads > 2:
            raise ValueError(f"sample {index} is corrupt (its image does not decode)")
        return super().__getitem__(index)


def launch(nproc: int) -> None:
    """Run this script on `nproc` processes as `vla train --nproc` does (vla_core.engine.launch),
    printing a failure as the CLI does."""
    import sys

    from vla_core.cli import print_error
    from vla_core.engine.launch import run_torchrun
    from vla_core.errors import VLAError

    arguments = list(sys.argv[1:])
    at = arguments.index("--launch")
    del arguments[at : at + 2]  # the workers train; they do not launch again
    try:
        code = run_torchrun(["--standalone", f"--nproc_per_node={nproc}", __file__, *arguments])
    except VLAError as exc:
        code = print_error(exc)
    sys.exit(code)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--resume", default=None)
    parser.add_argument("--sleep-after", type=int, default=None)
    parser.add_argument("--shards", default=None)
    parser.add_argument("--hang-in-save", type=int, default=None)
    parser.add_argument("--hang-in-async-commit", type=int, default=None)
    parser.add_argument("--launch", type=int, default=None)
    args = parser.parse_args()
    if args.launch:
        launch(args.launch)
        return
    torch.set_num_threads(1)
    engine_fixtures.register_synthetic(registry.register)
    registry.register("datasets", "FailingOnRank", FailingOnRank)
    if args.hang_in_save is not None:
        hang_in_save(args.hang_in_save)
    with open(args.config) as handle:
        config = validate_run_config(json.load(handle))
    callbacks: list = [TestCallbacks(args.sleep_after, args.shards)]
    if args.hang_in_async_commit is not None:
        hang_in_async_commit(args.hang_in_async_commit)
        callbacks.append(RecordPid())
    try:
        Trainer(config, resume=args.resume, callbacks=callbacks, plugin_manager=new_plugin_manager()).fit()
    except Exception as exc:  # as the `vla` CLI does: leave this rank's error for the launcher
        from vla_core.engine.rank_failures import record_exception

        record_exception(exc)
        raise


if __name__ == "__main__":
    main()
