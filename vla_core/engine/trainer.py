"""`Trainer`: the training loop of `vla train`.

One process by default; under torchrun every rank runs the same loop on its slice of
each global batch, with the model sharded by FSDP2. Per optimizer step: forward and
backward on `grad_accum_steps` micro-batches (bf16 autocast where `train.precision`
resolves to bf16: `auto` picks it only on hardware with native bf16), a check that
the loss is finite on every rank, gradient clipping over the (sharded) gradients,
AdamW and the lr schedule; then metrics and, every `save_every` steps and at the end, an
atomic checkpoint.

    trainer = Trainer(load_config("configs/tiny_llava.yaml"), resume="auto")
    result = trainer.fit()
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vla_core.config.run import RunConfig, config_warnings
from vla_core.engine.checkpoint import (
    OPTIMIZER_NAME,
    SCHEDULER_NAME,
    STATE_DIR,
    CheckpointDirectory,
    TrainerState,
    capture_rng_state,
    load_pt,
    read_trainer_state,
    restore_rng_state,
    rng_file,
    write_trainer_state,
)
from vla_core.engine.data_loading import build_dataloader
from vla_core.engine.distributed import DistributedContext, init_distributed, on_main, shutdown_distributed
from vla_core.engine.errors import TrainingDivergedError
from vla_core.engine.lora import ADAPTER_DIR, adapter_state_dict, split_state_dict, write_adapter
from vla_core.engine.metrics import JsonlMetrics, ProgressDisplay
from vla_core.engine.optim import build_optimizer, build_scheduler, follow_config
from vla_core.engine.rank_failures import collective_failure
from vla_core.engine.sampler import GlobalBatchSampler
from vla_core.engine.setup import (
    build_dataset,
    build_model,
    build_processor,
    check_model_fits_processor,
    check_resume_compatible,
    seed_training_rng,
)
from vla_core.engine.state_dicts import full_model_state, full_optimizer_state, load_full_optimizer_state
from vla_core.errors import ConfigError
from vla_core.precision import PrecisionChoice, resolve_precision


@dataclass
class TrainResult:
    """What a finished run left behind."""

    output_dir: Path
    step: int
    last_checkpoint: Path | None
    last_metrics: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Trains `config.model` on `config.data` as `config.train` says.

    Args:
        config: a validated run config (`vla_core.load_config`).
        resume: None (start fresh), "auto" (the latest complete checkpoint in
            `<output_dir>/checkpoints`, or fresh if there is none) or a checkpoint path.
        callbacks: objects with any of `on_train_start(trainer)`, `on_step_end(trainer,
            step, metrics)`, `on_checkpoint(trainer, step, path)`, `on_train_end(trainer)`;
            added to those from the `vla_train_callbacks` hook.
        sinks: objects with `log(step, metrics)` (and optionally `close()`), added to those
            from the `vla_metric_sinks` hook; used on rank 0 only.
        console: a rich Console for progress (default: stderr).
        plugin_manager: the pluggy manager to ask for hooks (default: the installed plugins).
    """

    def __init__(
        self,
        config: RunConfig,
        resume: str | Path | None = None,
        callbacks: list[Any] | None = None,
        sinks: list[Any] | None = None,
        console: Any = None,
        plugin_manager: Any = None,
    ) -> None:
        self.config = config
        self.train_config = config.train
        self.resume = None if resume is None else str(resume)
        self.output_dir = Path(config.output_dir)
        self.checkpoints = CheckpointDirectory(self.output_dir)
        self.console = console
        self._extra_callbacks, self._extra_sinks = list(callbacks or []), list(sinks or [])
        self._plugin_manager = plugin_manager
        self.step = 0
        self.last_checkpoint: Path | None = None
        self._pending_save: Any = None  # an async_checkpoint.PendingSave while one is being written
        self._async_groups: Any = None  # async_checkpoint.AsyncSaveGroups with train.async_save

    # ---- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Join the process group and build data, model, processor, optimizer; restore a
        checkpoint when resuming. `fit` calls it; call it yourself to inspect the parts."""
        from vla_core.engine.host_memory import release_freed_tensor_memory

        train = self.train_config
        release_freed_tensor_memory()  # before anything large is allocated: see host_memory.py
        self.context: DistributedContext = init_distributed(train.collective_timeout_s)
        self.precision: PrecisionChoice = resolve_precision(train.precision, self.context.device)
        on_main(self.context, self.checkpoints.remove_temporaries)
        self.resumed_from = self.checkpoints.resolve_resume(self.resume)
        self.last_checkpoint = self.resumed_from  # until this run saves one
        if self.resume is None and self.checkpoints.complete():
            raise ConfigError(
                f"'{self.output_dir}' already holds checkpoints of a run. Continue it with --resume auto, or start a "
                "new run in another output_dir (or delete the old one).",
                "output_dir",
            )
        state = read_trainer_state(self.resumed_from) if self.resumed_from else None
        if self.resumed_from is not None:
            check_resume_compatible(self.config, self.resumed_from)
        self.dataset = build_dataset(self.config)
        self.vla, self.model, self._lora_key_map = build_model(self.config, self.context, self.resumed_from)
        self.processor = build_processor(self.vla, self.dataset, self.resumed_from, self.context, self.output_dir)
        check_model_fits_processor(self.vla, self.processor)
        self.optimizer = build_optimizer(self.model, train)
        self.scheduler = build_scheduler(self.optimizer, train)
        if train.async_save and self._saves_sharded():
            from vla_core.engine.async_checkpoint import AsyncSaveGroups

            self._async_groups = AsyncSaveGroups(self.context, train.collective_timeout_s)
        self.step = state.step if state else 0
        if self.resumed_from is not None:
            self._restore_training_state(self.resumed_from, state)
        else:
            seed_training_rng(train.seed, self.context.rank)
        self.sampler = GlobalBatchSampler(
            num_samples=len(self.dataset),
            batch_size=train.batch_size,
            grad_accum_steps=train.grad_accum_steps,
            world_size=self.context.world_size,
            rank=self.context.rank,
            seed=train.seed,
            start_step=self.step,
            end_step=max(train.steps, self.step),
        )
        self.dataloader = build_dataloader(
            self.dataset,
            self.processor,
            self.sampler,
            seed=train.seed,
            num_workers=train.num_workers,
            pin_memory=self.context.device.type == "cuda",
        )
        self.callbacks = self._collect("vla_train_callbacks") + self._extra_callbacks
        self.sinks = (self._collect("vla_metric_sinks") + self._extra_sinks) if self.context.is_main else []

    def _collect(self, hook_name: str) -> list[Any]:
        from vla_core.plugin_manager import get_plugin_manager

        manager = self._plugin_manager or get_plugin_manager()
        results = getattr(manager.hook, hook_name)(config=self.config)
        return [item for result in results if result for item in result]

    def _restore_training_state(self, checkpoint: Path, state: TrainerState) -> None:
        from vla_core.engine.sharded_checkpoint import OPTIMIZER_SHARDS_DIR, load_sharded_optimizer

        state_dir = checkpoint / STATE_DIR
        # Sharded AdamW state: each rank reads the slices of its shards, on any number of ranks.
        # (A LoRA checkpoint of several processes shards its base weights but keeps optimizer.pt.)
        if (state_dir / OPTIMIZER_SHARDS_DIR).is_dir():
            load_sharded_optimizer(self.model, self.optimizer, checkpoint, STATE_DIR)
        else:
            optimizer_state = load_pt(state_dir / OPTIMIZER_NAME, mmap=True) if self.context.is_main else {}
            load_full_optimizer_state(self.model, self.optimizer, optimizer_state, self.context)
        self.scheduler.load_state_dict(load_pt(state_dir / SCHEDULER_NAME))
        follow_config(self.optimizer, self.scheduler, self.train_config)
        rng_path = state_dir / rng_file(self.context.rank)
        if state.world_size == self.context.world_size and rng_path.is_file():
            restore_rng_state(load_pt(rng_path))
        else:  # resumed on a different number of processes: fresh, but seeded, randomness
            seed_training_rng(self.train_config.seed + self.step, self.context.rank)

    # ---- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Run from the current step to `train.steps`; returns where things are."""
        try:
            self.setup()
            return self._fit()
        except RuntimeError as exc:
            context = getattr(self, "context", None)
            broken = None if context is None or not context.is_distributed else collective_failure(
                exc, context.rank, context.world_size, self.train_config.collective_timeout_s)
            if broken is None:
                raise
            raise broken from exc
        finally:
            if self._pending_save is not None:  # the run failed: let a save written in the background complete
                self._pending_save.finish_quietly()
                self._pending_save = None
            if hasattr(self, "context"):
                shutdown_distributed(self.context)

    def _fit(self) -> TrainResult:
        train = self.train_config
        main = self.context.is_main
        metrics_file = JsonlMetrics(self.output_dir, self.step if self.resumed_from else None) if main else None
        progress = ProgressDisplay(train.steps, self.step, train.log_every, self.console) if main else None
        if progress is not None:
            for line in self.header_lines():
                progress.print(line)
            for skipped, why in self.checkpoints.skipped:  # --resume auto passed over damaged checkpoints
                progress.print(f"skipped {skipped}: {why}")
            if self.resumed_from is not None:
                progress.print(f"resumed from {self.resumed_from} at step {self.step}")
        self._call("on_train_start", self)
        metrics: dict[str, Any] = {}
        batches = iter(self.dataloader)
        self.model.train()
        try:
            while self.step < train.steps:
                metrics = self._train_step(batches)
                self.step += 1
                if main:
                    metrics_file.log(self.step, metrics)
                    for sink in self.sinks:
                        sink.log(self.step, dict(metrics))
                    progress.update(self.step, metrics)
                self._call("on_step_end", self, self.step, metrics)
                if self.step % train.save_every == 0 or self.step == train.steps:
                    self.save_checkpoint()
            self.wait_for_checkpoint()
        finally:
            if main:
                progress.close()
                metrics_file.close()
                for sink in self.sinks:
                    close = getattr(sink, "close", None)
                    if callable(close):
                        close()
        self._call("on_train_end", self)
        return TrainResult(self.output_dir, self.step, self.last_checkpoint, metrics)

    def header_lines(self) -> list[str]:
        """What the run is, printed when it starts: model size, precision, data, output."""
        from vla_core.models.summary import human_count

        params = list(self.model.parameters())  # tied weights once; FSDP2's DTensors report global sizes
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        lora = " (LoRA adapters)" if self.train_config.lora is not None else ""
        episodes = getattr(self.dataset, "num_episodes", None)
        data = f"{len(self.dataset)} frames" + (f" in {episodes} episodes" if episodes is not None else "")
        name = type(self.vla).__name__
        lines = [
            f"model {name}: {human_count(total)} parameters, {human_count(trainable)} trainable{lora}",
            f"{self.precision.describe()} on {self.context.device}"
            + (f", {self.context.world_size} processes" if self.context.world_size > 1 else ""),
            f"data {data}; {self.train_config.steps} steps of batch {self.train_config.batch_size}",
            f"output {self.output_dir}",
        ]
        if self.precision.warning:
            lines.append(f"warning: {self.precision.warning}")
        lines += [f"warning: {warning}" for warning in config_warnings(self.config)]
        return lines

    def _autocast(self) -> contextlib.AbstractContextManager:
        return self.precision.autocast()

    def _train_step(self, batches: Iterator[dict[str, Any]]) -> dict[str, Any]:
        """One optimizer step over `grad_accum_steps` micro-batches -> its metrics.

        When the model returns `loss_weight` (the count its masked-mean loss divides by),
        the step's loss is the mean over every valid element of the global batch: each
        micro-batch back-propagates its weighted sum and the gradients are divided by the
        total weight of all micro-batches on all ranks. One process, N processes and
        gradient accumulation then give the same update even when padding makes batches
        weigh differently. Without `loss_weight`, micro-batch losses are averaged.
        """
        train, context = self.train_config, self.context
        started = time.perf_counter()
        lr = self.scheduler.get_last_lr()[0]
        loss_sum = torch.zeros((), dtype=torch.float64)  # sum of losses, or of loss x weight
        weight_sum = torch.zeros((), dtype=torch.float64)
        weighted = False
        bad_batches: dict[int, dict[str, Any]] = {}  # micro-step -> batch, when its loss is not finite
        accum = train.grad_accum_steps
        for micro_step in range(accum):
            batch = _to_device(next(batches), context.device)
            if context.is_distributed:  # reduce-scatter gradients once, after the last micro-batch
                self.model.set_requires_gradient_sync(micro_step == accum - 1)
            with self._autocast():
                out = self.model(**batch)
            loss, weight = out["loss"], out.get("loss_weight")
            if not bool(torch.isfinite(loss.detach())):
                bad_batches[micro_step] = batch
            if weight is not None:
                weighted = True
                weight = weight.detach().to(loss.dtype)
                (loss * weight).backward()
                loss_sum += (loss.detach() * weight).double().cpu()
                weight_sum += weight.double().cpu()
            else:
                (loss / accum).backward()
                loss_sum += loss.detach().double().cpu()
        totals = context.all_reduce_sum(torch.stack([loss_sum, weight_sum, torch.tensor(float(len(bad_batches)))]))
        if totals[2] > 0:
            self._diverged("the loss", bad_batches)
        if weighted:
            total_weight = max(float(totals[1]), 1e-12)
            # FSDP averaged the gradients over ranks; undo that and divide by the global weight.
            self._scale_gradients(context.world_size / total_weight)
            step_loss = float(totals[0]) / total_weight
        else:
            step_loss = float(totals[0]) / (accum * context.world_size)
        grad_norm = self._clip_gradients()
        if not math.isfinite(grad_norm):
            self._diverged("the gradient norm", {m: {} for m in range(accum)})
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        samples_seen = (self.step + 1) * train.batch_size
        return {
            "loss": step_loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "samples_per_s": train.batch_size / elapsed,
            "step_time_s": elapsed,
            "epoch": samples_seen / (self.sampler.steps_per_epoch * train.batch_size),
            "samples_seen": samples_seen,
        }

    def _scale_gradients(self, factor: float) -> None:
        with torch.no_grad():
            for param in self.model.parameters():
                if param.grad is not None:
                    param.grad.mul_(factor)

    def _clip_gradients(self) -> float:
        """Clip the global gradient norm (over every rank's shards) and return it."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        max_norm = self.train_config.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else math.inf)
        if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2: the norm is replicated
            norm = norm.full_tensor()
        return float(norm)

    def _diverged(self, what: str, bad_batches: dict[int, dict[str, Any]]) -> None:
        """Stop the run (every rank): name the step, the samples of the offending
        micro-batches and their episodes, the samples whose inputs hold NaN/inf, and the
        last good checkpoint. Nothing more is saved."""
        step = self.step + 1
        batch_indices, poisoned = [], []
        for micro_step, batch in bad_batches.items():
            keys = [index for _, index in self.sampler.keys(self.step, micro_step)]
            batch_indices += keys
            for name, rows in _non_finite_rows(batch).items():
                poisoned += [(keys[row], name) for row in rows]
        gathered = self.context.all_gather_object((batch_indices, poisoned))
        indices = sorted({i for rank_indices, _ in gathered for i in rank_indices})
        bad_inputs = sorted({item for _, rank_poisoned in gathered for item in rank_poisoned})
        samples = [(i, _episode_of(self.dataset, i)) for i in indices[:32]]
        episodes = sorted({e for _, e in samples if e is not None})
        message = f"{what} became NaN or infinite at step {step}; the run stopped without saving. "
        message += f"The batch held dataset indices {indices[:32]}"
        message += f" from episodes {episodes}. " if episodes else ". "
        if bad_inputs:
            described = [f"index {i} (episode {_episode_of(self.dataset, i)}) has NaN/inf in '{key}'"
                         for i, key in bad_inputs[:8]]
            message += f"Bad inputs: {', '.join(described)}. "
        last = self.checkpoints.latest()
        message += f"The last good checkpoint is '{last}' (resume with --resume auto). " if last else ""
        message += "Fix or drop those samples, lower train.lr, set train.max_grad_norm, or train in fp32."
        raise TrainingDivergedError(message, step, samples)

    def _call(self, method: str, *args: Any) -> None:
        for callback in self.callbacks:
            fn = getattr(callback, method, None)
            if callable(fn):
                fn(*args)

    # ---- checkpoints -----------------------------------------------------------------------
    def _saves_sharded(self) -> bool:
        """Whether checkpoints hold DCP shards of the whole training state: several processes,
        or `async_save` (DCP writes in the background); one plain process writes full
        safetensors. A LoRA run on several processes shards only its base weights
        (`_save_lora_sharded`); on one process it writes safetensors."""
        return self._lora_key_map is None and (self.context.is_distributed or self.train_config.async_save)

    def save_checkpoint(self) -> Path:
        """Write `checkpoints/step-<step>/` atomically (a collective: every rank calls it),
        then delete checkpoints beyond `keep_last`. Several processes write their shards
        (`sharded_checkpoint`; with LoRA, shards of the base and a gathered adapter:
        `sharded_lora`); one process writes full safetensors.

        With `train.async_save` the shards are written in the background and this returns
        at once: the checkpoint counts (and `on_checkpoint` is called) once it is complete,
        which the next save and the end of the run wait for (`wait_for_checkpoint`)."""
        train = self.train_config
        self.wait_for_checkpoint()
        rng_states = self.context.all_gather_object(capture_rng_state())
        state = TrainerState(
            step=self.step,
            epoch=self.sampler.epoch_of(self.step),
            samples_seen=self.step * train.batch_size,
            world_size=self.context.world_size,
            batch_size=train.batch_size,
            seed=train.seed,
        )
        target = self.checkpoints.path(self.step)
        if self._async_groups is not None:
            self._start_async_save(target, state, rng_states)
            return target
        if self._lora_key_map is not None and self.context.is_distributed:
            self._save_lora_sharded(target, state, rng_states)
        elif self._saves_sharded():
            self._save_sharded(target, state, rng_states)
        else:
            self._save_full(target, state, rng_states)
        self.last_checkpoint = target
        self._call("on_checkpoint", self, self.step, target)
        return target

    def wait_for_checkpoint(self) -> None:
        """Block until a checkpoint being written in the background is complete (a
        collective); a failed background write raises here on every rank."""
        pending, self._pending_save = self._pending_save, None
        if pending is None:
            return
        pending.wait()
        self.last_checkpoint = pending.target
        self._call("on_checkpoint", self, pending.step, pending.target)

    def _start_async_save(self, target: Path, state: TrainerState, rng_states: list[dict[str, Any]]) -> None:
        """Hand this rank's shards to DCP's background writer; rank 0 writes the small files now."""
        from vla_core.engine.async_checkpoint import start_async_save

        def write_rank0_files(tmp: Path) -> None:
            self.vla.write_config(tmp, extra_config=self._checkpoint_extra())
            self.processor.save_pretrained(tmp)
            write_trainer_state(tmp, state, None, self.scheduler.state_dict(), rng_states)

        def prune() -> None:
            self.checkpoints.prune(self.train_config.keep_last)

        self._pending_save = start_async_save(self.model, self.optimizer, target, self.step, STATE_DIR,
                                              self.context, self._async_groups, write_rank0_files, prune)

    def _save_full(self, target: Path, state: TrainerState, rng_states: list[dict[str, Any]]) -> None:
        """Gather the full weights and optimizer state on rank 0, which writes them."""
        model_state = full_model_state(self.model)
        optimizer_state = full_optimizer_state(self.model, self.optimizer)

        def write() -> None:
            from vla_core.checksums import checkpoint_directory

            with checkpoint_directory(target) as tmp:
                self._write_model(tmp, model_state)
                self.processor.save_pretrained(tmp)
                write_trainer_state(tmp, state, optimizer_state, self.scheduler.state_dict(), rng_states)
            self.checkpoints.prune(self.train_config.keep_last)

        on_main(self.context, write)

    def _save_sharded(self, target: Path, state: TrainerState, rng_states: list[dict[str, Any]]) -> None:
        """Every rank writes its shards of the weights and AdamW state into one atomic
        directory; rank 0 adds config, processor and trainer state (nothing is gathered)."""
        from vla_core.engine.collective_directory import collective_checkpoint_directory
        from vla_core.engine.sharded_checkpoint import save_sharded

        with collective_checkpoint_directory(target, self.context) as tmp:
            save_sharded(self.model, self.optimizer, tmp, STATE_DIR)
            if self.context.is_main:
                self.vla.write_config(tmp, extra_config=self._checkpoint_extra())
                self.processor.save_pretrained(tmp)
                write_trainer_state(tmp, state, None, self.scheduler.state_dict(), rng_states)
        on_main(self.context, self.checkpoints.prune, self.train_config.keep_last)

    def _save_lora_sharded(self, target: Path, state: TrainerState, rng_states: list[dict[str, Any]]) -> None:
        """LoRA on several processes: every rank writes its shards of the frozen base (under
        the VLA's parameter names); the adapter and its AdamW state (small) are gathered and
        rank 0 writes them with config, processor and trainer state. One atomic directory."""
        from vla_core.engine.collective_directory import collective_checkpoint_directory
        from vla_core.engine.sharded_lora import gather_adapter_state, save_sharded_lora_base

        assert self._lora_key_map is not None
        # Gathered before the directory opens, so a failing write cannot leave a rank in a collective.
        adapter_state = gather_adapter_state(self.model)
        optimizer_state = full_optimizer_state(self.model, self.optimizer)
        with collective_checkpoint_directory(target, self.context) as tmp:
            save_sharded_lora_base(self.model, self._lora_key_map, tmp)
            if self.context.is_main:
                self.vla.write_config(tmp, extra_config=self._checkpoint_extra())
                write_adapter(tmp / ADAPTER_DIR, self.model, adapter_state)
                self.processor.save_pretrained(tmp)
                write_trainer_state(tmp, state, optimizer_state, self.scheduler.state_dict(), rng_states)
        on_main(self.context, self.checkpoints.prune, self.train_config.keep_last)

    def _checkpoint_extra(self) -> dict[str, Any]:
        """What config.json records besides the model spec."""
        return {
            "inference_model": self.config.inference_model,
            "data": self.config.data,
            "train": self.train_config.model_dump(mode="json"),
            "precision": self.precision.as_dict(),
            "output_dir": str(self.config.output_dir),
            "training_step": self.step,
        }

    def _write_model(self, directory: Path, model_state: dict[str, torch.Tensor]) -> None:
        extra = self._checkpoint_extra()
        if self._lora_key_map is not None:
            base_state = split_state_dict(model_state, self._lora_key_map)
            write_adapter(directory / ADAPTER_DIR, self.model, adapter_state_dict(self.model, model_state))
        else:
            base_state = model_state
        self.vla.write_pretrained(directory, extra_config=extra, state_dict=base_state)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _non_finite_rows(batch: dict[str, Any]) -> dict[str, list[int]]:
    """{batch key: rows with a NaN/inf} over the floating-point tensors of a batch."""
    rows = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim >= 1:
            bad = ~torch.isfinite(value.detach().reshape(value.shape[0], -1)).all(dim=1)
            if bad.any():
                rows[key] = bad.nonzero().flatten().tolist()
    return rows


def _episode_of(dataset: Any, index: int) -> int | None:
    try:
        episode = dataset[index].get("episode_index")
    except Exception:  # naming the episode is best effort: the loss error is what matters
        return None
    return None if episode is None else int(episode)

