"""PolicyServer: serves `Policy.act` over HTTP on 127.0.0.1 (unless told otherwise).

Endpoints:
    GET  /health    -> 200 "ok"
    GET  /metadata  -> JSON: checkpoint, model type, cameras, state/action dims, chunk size
    POST /act       -> body: an observation (.npz, see wire.py); reply: .npz with `actions`
                       (T, action_dim) float32 in robot units and `inference_ms`

Requests are served by threads but run the model one at a time (a lock), so a GPU is
never shared by two forward passes. Bodies are limited in size and parsed without pickle.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from vla_core.errors import VLAError
from vla_core.serving.wire import decode_observation, encode_arrays

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024 * 1024


class PolicyServer(ThreadingHTTPServer):
    """An HTTP server around a policy with `act(observation) -> (T, action_dim)`.

    Args:
        policy: a `vla_core.engine.policy.Policy` (or anything with `act`).
        host: interface to bind; 127.0.0.1 keeps it local, 0.0.0.0 exposes it to the network.
        port: TCP port; 0 picks a free one (see `server_address`).
        metadata: extra JSON-able facts served at /metadata.
    """

    daemon_threads = True

    def __init__(self, policy: Any, host: str = "127.0.0.1", port: int = 8000, metadata: dict | None = None) -> None:
        self.policy = policy
        self.metadata = dict(metadata or {})
        self.lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def act(self, body: bytes) -> bytes:
        observation = decode_observation(body)
        noise = observation.pop("noise", None)
        with self.lock:
            start = time.perf_counter()
            if noise is None:
                actions = self.policy.act(observation)
            else:
                import torch

                actions = self.policy.act(observation, noise=torch.from_numpy(np.asarray(noise, dtype=np.float32)))
            elapsed_ms = (time.perf_counter() - start) * 1000
        return encode_arrays({"actions": np.asarray(actions, dtype=np.float32), "inference_ms": elapsed_ms})


class _Handler(BaseHTTPRequestHandler):
    server: PolicyServer
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per robot

    def log_message(self, format: str, *args: Any) -> None:  # route through logging, not stderr
        logger.debug("%s - %s", self.address_string(), format % args)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, json.dumps({"error": message}).encode(), "application/json")

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b"ok", "text/plain")
        elif self.path == "/metadata":
            self._reply(200, json.dumps(self.server.metadata).encode(), "application/json")
        else:
            self._error(404, f"no endpoint {self.path}; use GET /health, GET /metadata or POST /act.")

    def do_POST(self) -> None:
        if self.path != "/act":
            self._error(404, f"no endpoint {self.path}; POST observations to /act.")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True  # the body's end is unknown: the connection cannot be reused
            self._error(400, f"Content-Length {self.headers.get('Content-Length')!r} is not a number of bytes.")
            return
        if not 0 < length <= MAX_BODY_BYTES:
            self.close_connection = True  # an unread body would be parsed as the next request
            self._error(413 if length else 411, f"the body must be 1 byte to {MAX_BODY_BYTES} bytes, got {length}.")
            return
        body = self.rfile.read(length)
        try:
            reply = self.server.act(body)
        except VLAError as exc:
            self._error(400, str(exc))
        except Exception as exc:  # a bug or a bad array: report, keep serving
            logger.exception("policy failed on a request")
            self._error(500, f"{type(exc).__name__}: {exc}")
        else:
            self._reply(200, reply, "application/octet-stream")
