"""Run a training in a fresh process (optionally under torchrun) with the synthetic test
components registered. Used by the FSDP and kill-and-resume tests.

    python train_script.py CONFIG.json [--resume auto] [--sleep-after STEP] [--shards OUT_PREFIX]

--sleep-after STEP: sleep 0.5 s after every step past STEP (so a test can kill the run
between checkpoints); --shards: each rank writes the bytes of parameters and optimizer
state it holds after the first step to OUT_PREFIX-rank<R>.json.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--resume", default=None)
    parser.add_argument("--sleep-after", type=int, default=None)
    parser.add_argument("--shards", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine_fixtures.register_synthetic(registry.register)
    with open(args.config) as handle:
        config = validate_run_config(json.load(handle))
    callbacks = [TestCallbacks(args.sleep_after, args.shards)]
    Trainer(config, resume=args.resume, callbacks=callbacks, plugin_manager=new_plugin_manager()).fit()


if __name__ == "__main__":
    main()
