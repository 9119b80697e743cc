"""A model server for the vla-eval harness: any vla checkpoint on LIBERO, SimplerEnv, CALVIN, ...

vla-eval (`pip install vla-eval`, allenai/vla-evaluation-harness) runs each benchmark in its
own Docker image and asks a model server for actions over its websocket + msgpack protocol
(HELLO, EPISODE_START, OBSERVATION -> ACTION, EPISODE_END). Its model servers subclass
`PredictModelServer` and implement `predict(observation, ctx)`: the harness's server loop
(`vla_eval.model_servers.serve`) speaks the wire, and `PredictModelServer` keeps a chunk
buffer per session (one action per observation, a new inference when the buffer is empty).
This one puts a checkpoint's `PolicyService` (the input checks and sessions of `vla serve`)
behind `predict`:

    {"images": {"agentview": (H, W, 3) uint8, "wrist": ...}, "states": (8,), "task_description": str, ...}
      -> flattened keys: "images/agentview", "images/wrist", "states", "task_description"
      -> the key map (keys.py: vla_eval_key_map, serving.json, --key) -> ObservationSpec.check
      -> the connection's Session (Policy.reset() and fresh noise every episode) -> (T, A) actions
      -> the first `execute_steps` of them, one per observation

Keys the harness sends that feed no input (SimplerEnv's `task_name`, LIBERO's
`controller_states`) are ignored and named once in the log. Needs the `vla-eval` extra:
`pip install 'vla-core[vla-eval]'`.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vla_core.errors import ConfigError
from vla_core.serving.checks import FrameSizePolicy, ObservationError, ObservationSpec
from vla_core.serving.keys import vla_eval_key_map
from vla_core.serving.metadata import policy_metadata
from vla_core.serving.service import PolicyService, Session

try:
    import anyio
    from vla_eval.model_servers.base import SessionContext
    from vla_eval.model_servers.predict import PredictModelServer
    from vla_eval.model_servers.serve import serve_async
    from vla_eval.specs import LANGUAGE, DimSpec
except ImportError as exc:  # the optional extra is not installed
    raise ConfigError(
        f"`vla serve --protocol vla-eval` needs the vla-eval harness's package ({exc}). Install it with "
        "pip install 'vla-core[vla-eval]' (or pip install vla-eval), or serve openpi's protocol (the default)."
    ) from None

logger = logging.getLogger(__name__)


def flatten_observation(observation: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"images": {"agentview": a}, "states": s} -> {"images/agentview": a, "states": s}: nested maps
    (cameras, robocasa365's state parts) become "/"-joined keys the key map can name one by one."""
    flat: dict[str, Any] = {}
    for key, value in observation.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_observation(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


class VLAEvalModelServer(PredictModelServer):
    """A vla checkpoint behind its input checks, as a vla-eval model server.

    Args:
        service: the policy and its checks; its key map must name the harness's keys
            (`from_policy` adds `vla_eval_key_map`).
        chunk_size: actions T the policy predicts per inference.
        execute_steps: actions of each chunk executed before the next inference (1..T);
            None executes all T (as `vla eval` does).
    """

    def __init__(self, service: PolicyService, chunk_size: int, execute_steps: int | None = None) -> None:
        if execute_steps is not None and not 1 <= execute_steps <= chunk_size:
            raise ConfigError(
                f"--execute-steps {execute_steps} is outside 1..{chunk_size}: the checkpoint predicts chunks of "
                f"{chunk_size} actions, of which that many are executed before the next inference."
            )
        super().__init__(chunk_size=execute_steps or chunk_size)
        self.service = service
        self.sessions: dict[str, Session] = {}  # per harness session (one connection / shard): episode state
        self._ignored: set[str] = set()
        self._warned_shared_state = False

    @classmethod
    def from_policy(
        cls,
        policy: Any,
        key_overrides: Sequence[Mapping[str, str]] = (),
        execute_steps: int | None = None,
        seed: int = 0,
        frame_size: FrameSizePolicy = "warn",
        checkpoint: str | Path | None = None,
    ) -> VLAEvalModelServer:
        """A `Policy` with the harness's keys (then `key_overrides`: serving.json, --key) mapped to its inputs."""
        processor = policy.processor
        keys = (vla_eval_key_map(list(processor.cameras)), *key_overrides)
        spec = ObservationSpec.from_policy(policy, keys, frame_size=frame_size)
        service = PolicyService(policy, spec, policy_metadata(policy, checkpoint), seed=seed)
        return cls(service, processor.chunk_size, execute_steps)

    # ---- what the harness reads from HELLO ----------------------------------------------------
    def get_observation_params(self) -> dict[str, Any]:
        """Merged into the benchmark's constructor params: every checkpoint reads a state; a wrist
        frame when it has a second camera."""
        params: dict[str, Any] = {"send_state": True}
        if len(self.service.spec.cameras) > 1:
            params["send_wrist_image"] = True
        return params

    def get_action_spec(self) -> dict[str, DimSpec]:
        # The action convention (delta or absolute, rotation format, gripper sign) is the training
        # data's; the server cannot know it, so it declares none rather than a wrong one.
        return {}

    def get_observation_spec(self) -> dict[str, DimSpec]:
        # Cameras and state are named per benchmark (the key map resolves them); the instruction is common.
        return {"language": LANGUAGE}

    # ---- episodes -----------------------------------------------------------------------------
    async def on_episode_start(self, config: dict[str, Any], ctx: SessionContext) -> None:
        # Off the event loop: reset() waits for the model lock while another session infers.
        await anyio.to_thread.run_sync(self._start_episode, ctx.session_id)
        await super().on_episode_start(config, ctx)  # drops the session's chunk buffer

    def _start_episode(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:  # a new session starts its first episode (and resets the policy)
            if self.sessions and _reads_history(self.service.policy) and not self._warned_shared_state:
                self._warned_shared_state = True
                logger.warning(
                    "a second harness session connected, but this checkpoint's head keeps state across frames "
                    "(supports_history) and every session shares it: each episode start resets the others'. "
                    "Evaluate it with one shard per server."
                )
            session = self.sessions[session_id] = self.service.new_session()
        else:
            session.start_episode()
        return session

    # ---- inference ----------------------------------------------------------------------------
    def predict(self, obs: dict[str, Any], ctx: SessionContext) -> dict[str, Any]:
        """One harness observation -> {"actions": (T, A) float32 in robot units}; the base class
        executes the first `chunk_size` of them. ObservationError (sent to the harness as an ERROR
        message, the episode counts as failed) when the observation does not fit the checkpoint."""
        session = self.sessions.get(ctx.session_id) or self._start_episode(ctx.session_id)
        flat = flatten_observation(obs)
        message = {key: value for key, value in flat.items() if key in self.service.spec.keys}
        self._log_ignored(flat.keys() - message.keys())
        try:
            reply = session.handle(message)
        except ObservationError as exc:
            raise ObservationError(
                f"{exc} (The harness sent keys {sorted(flat)}; feed one to an input with "
                "`vla serve --protocol vla-eval --key KEY=TARGET`.)"
            ) from None
        return {"actions": reply["actions"]}

    def _log_ignored(self, keys: Iterable[str]) -> None:
        new = sorted(set(keys) - self._ignored)
        if new:
            self._ignored.update(new)
            logger.info("ignoring harness keys %s: no input of this checkpoint reads them (map one with --key)", new)


def _reads_history(policy: Any) -> bool:
    """Whether the policy's head keeps a window or recurrent state between frames of an episode."""
    head = getattr(getattr(policy, "vla", None), "vla_head", None)
    return bool(getattr(head, "supports_history", False))


def serve_vla_eval(
    model_server: VLAEvalModelServer,
    host: str = "127.0.0.1",
    port: int = 8000,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve on the harness's own server loop until SIGTERM or Ctrl-C, then return.

    `on_ready(url)` runs once the port listens. A stop closes the connections (an observation
    being answered gets no action: the harness counts that episode as failed) and returns once
    the model has finished the inference in progress, whose thread is never cut off. A port
    that cannot be bound raises its OSError."""
    try:
        anyio.run(_serve_until_signal, model_server, host, port, on_ready)
    except Exception as exc:
        # The task group wraps a lone error (a taken port) in an ExceptionGroup: raise the error itself.
        inner: BaseException = exc
        while len(getattr(inner, "exceptions", ())) == 1:
            inner = inner.exceptions[0]  # type: ignore[attr-defined]
        if inner is exc:
            raise
        raise inner from None
    finally:
        # The loop is gone but a worker thread may still be inside Policy.act: wait for it, so
        # the caller (or interpreter exit) never tears torch down under a running inference.
        with model_server.service.lock:
            pass


async def _serve_until_signal(
    model_server: VLAEvalModelServer, host: str, port: int, on_ready: Callable[[str], None] | None
) -> None:
    # Signals go to the loop, not KeyboardInterrupt: one raised while the model thread runs
    # would abort the process instead of stopping it.
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as group:
            bound = await group.start(serve_async, model_server, host, port)
            if on_ready is not None:
                on_ready(f"ws://{host}:{bound}")
            async for _ in signals:
                break
            group.cancel_scope.cancel()
