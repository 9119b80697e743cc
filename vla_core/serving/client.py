"""PolicyClient: the robot side of `vla serve`, for users without openpi-client.

    with PolicyClient("ws://127.0.0.1:8000") as client:
        actions = client.act({"images": {"observation.images.top": frame}, "state": q, "task": "open the drawer"})
        client.reset()  # a new episode

It speaks the same protocol as openpi-client's `WebsocketClientPolicy` (see server.py), so
either client works against either server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from vla_core.errors import VLAError
from vla_core.rtc import RTCPrefix
from vla_core.serving.msgpack_numpy import packb, unpackb
from vla_core.serving.rtc_wire import RTC_KEY, encode_prefix
from vla_core.serving.service import RESET_MESSAGE


class PolicyServerError(VLAError):
    """The policy server rejected a request or could not be reached."""


class PolicyClient:
    """One websocket connection to a policy server (opened on first use, reopened after an error).

    Args:
        url: the server, e.g. "ws://127.0.0.1:8000".
        api_key: sent as `Authorization: Api-Key <api_key>` when the server needs one.
        timeout: seconds to wait for the connection and for each reply.
    """

    def __init__(self, url: str = "ws://127.0.0.1:8000", api_key: str | None = None, timeout: float = 30.0) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise PolicyServerError(f"'{url}' is not a ws://host:port address of a policy server.")
        self.url, self.api_key, self.timeout = url, api_key, timeout
        self._ws: ClientConnection | None = None
        self._metadata: dict[str, Any] | None = None
        self.last_inference_ms: float | None = None

    def _connection(self) -> ClientConnection:
        if self._ws is not None:
            return self._ws
        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        try:
            # legacy=True: a plain connection that lives across calls (closed by close()).
            ws = connect(self.url, additional_headers=headers, compression=None, max_size=None,
                         open_timeout=self.timeout, legacy=True)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
            message = f"the policy server at {self.url} refused the connection ({status}): {body}"
            raise PolicyServerError(message) from None
        except (OSError, TimeoutError, InvalidURI) as exc:
            raise PolicyServerError(
                f"cannot reach the policy server at {self.url} ({exc}); is `vla serve` running there?"
            ) from None
        try:
            self._metadata = unpackb(ws.recv(timeout=self.timeout))
        except (TimeoutError, ConnectionClosed) as exc:
            ws.close()
            raise PolicyServerError(f"{self.url} accepted the connection but sent no metadata ({exc}).") from None
        self._ws = ws
        return ws

    def infer(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request map, return the reply map. Never re-sends: a request reaches the model at most once."""
        ws = self._connection()
        try:
            ws.send(packb(message))
            reply = ws.recv(timeout=self.timeout)
        except TimeoutError:
            # Close, so the late reply cannot be taken for the answer to the next request.
            self.close()
            raise PolicyServerError(
                f"no reply from {self.url} within {self.timeout:g} s. The request was sent once and not re-sent (the "
                "server may still be computing it); the connection is closed and the next call opens a new one. "
                "Raise `timeout` if the model is this slow."
            ) from None
        except ConnectionClosed as exc:
            self.close()
            raise PolicyServerError(f"the policy server closed the connection: {exc}.") from None
        if isinstance(reply, str):  # the server's error reason; it closes the connection next
            self.close()
            raise PolicyServerError(f"the policy server refused the request: {reply}")
        return unpackb(reply)

    def act(
        self, observation: dict[str, Any], noise: np.ndarray | None = None, rtc: RTCPrefix | None = None
    ) -> np.ndarray:
        """Observation ({"images": {camera: uint8 (H, W, 3)}, "state", "task"}) -> (T, action_dim) float32.
        `rtc`: the previous chunk's actions to agree with (servers with `supports_rtc`)."""
        message = {key: value for key, value in observation.items() if key != "images"}
        message.update(observation.get("images", {}))
        if "state" in message:
            message["state"] = np.asarray(message["state"], dtype=np.float32)
        if noise is not None:
            message["noise"] = np.asarray(noise, dtype=np.float32)
        if rtc is not None:
            message[RTC_KEY] = encode_prefix(rtc)
        reply = self.infer(message)
        self.last_inference_ms = float(reply["policy_timing"]["infer_ms"])
        return reply["actions"]

    def reset(self) -> None:
        """Start a new episode on the server (the policy's reset, fresh sampling noise)."""
        self.infer(dict(RESET_MESSAGE))

    @property
    def supports_rtc(self) -> bool:
        """Whether the server's model samples with an RTC prefix (from its metadata; connects)."""
        return bool(self.metadata().get("supports_rtc", False))

    def metadata(self) -> dict[str, Any]:
        """What the server sent on connect: cameras, keys, dims, model type."""
        self._connection()
        assert self._metadata is not None
        return self._metadata

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
