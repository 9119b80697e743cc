"""PolicyClient: the robot side of `vla serve`.

    client = PolicyClient("http://127.0.0.1:8000")
    actions = client.act({"images": {"observation.images.top": frame}, "state": q, "task": "open the drawer"})
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlparse

import numpy as np

from vla_core.errors import VLAError
from vla_core.serving.wire import decode_arrays, encode_observation


class PolicyServerError(VLAError):
    """The policy server rejected a request or could not be reached."""


class PolicyClient:
    """Sends observations to a PolicyServer over one keep-alive connection.

    Args:
        url: the server, e.g. "http://127.0.0.1:8000".
        timeout: seconds to wait for a reply.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 30.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise PolicyServerError(f"'{url}' is not an http://host:port address of a policy server.")
        self.url = url
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
        self.last_inference_ms: float | None = None

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        for attempt in range(2):  # one retry: the server may have closed an idle connection
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.connection.close()
                if attempt == 1:
                    raise PolicyServerError(
                        f"cannot reach the policy server at {self.url} ({exc}); is `vla serve` running there?"
                    ) from None
        if response.status != 200:
            try:
                message = json.loads(data)["error"]
            except (ValueError, KeyError):
                message = data.decode(errors="replace")
            raise PolicyServerError(f"the policy server answered {response.status}: {message}")
        return data

    def act(self, observation: dict[str, Any], noise: np.ndarray | None = None) -> np.ndarray:
        """Observation -> (T, action_dim) float32 actions in robot units."""
        payload = dict(observation)
        if noise is not None:
            payload["noise"] = np.asarray(noise, dtype=np.float32)
        reply = decode_arrays(self._request("POST", "/act", encode_observation(payload)))
        self.last_inference_ms = float(reply["inference_ms"])
        return reply["actions"]

    def metadata(self) -> dict[str, Any]:
        return json.loads(self._request("GET", "/metadata"))

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
