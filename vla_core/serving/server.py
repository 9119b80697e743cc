"""`PolicyServer`: openpi's websocket protocol on the `websockets` library.

The wire, as openpi's `WebsocketPolicyServer` and `openpi-client` speak it:
    connect (ws://HOST:PORT, optional `Authorization: Api-Key KEY`)
    <- metadata (msgpack map)
    -> observation (msgpack map, numpy arrays as openpi's `__ndarray__` maps)
    <- {"actions": (T, A) float32, "server_timing": {"infer_ms", "prev_total_ms"}, "policy_timing": {...}}
    ... ; on an error: <- a text frame with the reason, then close 1011.
`GET /healthz` on the same port answers "OK". `{"reset": True}` starts a new episode.

One asyncio loop accepts and reads connections (no thread per connection, so stalled
clients cost memory only, bounded by the size limit and timeouts); the model runs in one
worker thread, one request at a time. SIGTERM and Ctrl-C stop accepting, let in-flight
requests finish and reply, close every connection with 1001 and return.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import http
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.server import Request, Response, Server, ServerConnection, serve
from websockets.frames import CloseCode

from vla_core.errors import VLAError
from vla_core.serving.msgpack_numpy import WireFormatError, packb, unpackb
from vla_core.serving.service import PolicyService

logger = logging.getLogger(__name__)
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # four 480x640 RGB frames are 3.7 MB
ERROR_CLOSE_REASON = "request failed; the reason is in the previous frame"


@dataclass
class _ConnectionState:
    busy: bool = False  # a request is being computed or answered


class PolicyServer:
    """Serves a `PolicyService` to openpi-protocol clients.

    Args:
        service: the policy behind its checks.
        host: interface to bind; 127.0.0.1 keeps it local, 0.0.0.0 exposes it to the network.
        port: TCP port; 0 picks a free one (see `port` after start).
        api_key: when set, clients must send `Authorization: Api-Key <api_key>`.
        max_message_bytes: the largest request accepted (larger ones are closed with 1009 unread).
        idle_timeout: seconds a connection may wait between requests (or take to send one).
        open_timeout: seconds a client has to complete the websocket handshake.
        backlog: pending TCP connections the kernel queues (a burst of robots connecting at once).
    """

    def __init__(
        self,
        service: PolicyService,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float = 300.0,
        open_timeout: float = 10.0,
        backlog: int = 512,
    ) -> None:
        self.service, self.host, self.port = service, host, port
        self.api_key = api_key
        self.max_message_bytes, self.idle_timeout, self.open_timeout = max_message_bytes, idle_timeout, open_timeout
        self.backlog = backlog
        self.connections: dict[ServerConnection, _ConnectionState] = {}
        self._stopping = False
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        # One worker: the model runs one request at a time, off the event loop.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-policy")

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # ---- running ---------------------------------------------------------------------------
    def serve_forever(self, on_ready: Any = None) -> None:
        """Serve in this (main) thread until SIGTERM or Ctrl-C, then stop gracefully and return."""
        asyncio.run(self._run(install_signal_handlers=True, on_ready=on_ready))

    def start(self) -> PolicyServer:
        """Serve from a background thread (tests, benchmarks); returns once listening."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run(False)), name="vla-serve", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop a server started with `start()` the way SIGTERM does, and wait for it."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _run(self, install_signal_handlers: bool, on_ready: Any = None) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            server = await serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._process_request,
                compression=None,  # frames are arrays; deflate costs latency and invites decompression bombs
                max_size=self.max_message_bytes,
                max_queue=2,  # frames buffered per connection: bounds memory when a client pipelines
                open_timeout=self.open_timeout,
                backlog=self.backlog,
                logger=logging.getLogger("vla_core.serving.websockets"),
            )
        except OSError as exc:  # e.g. the port is taken: start() or serve_forever() raises it
            self._error = exc
            self._ready.set()
            if install_signal_handlers:
                raise
            return
        self.port = server.sockets[0].getsockname()[1]
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                # On the loop, not as KeyboardInterrupt: an exception raised while the model
                # thread runs would abort the process instead of finishing the request.
                self._loop.add_signal_handler(signum, self._stop.set)
        self._ready.set()
        if on_ready is not None:
            on_ready(self)
        await self._stop.wait()
        await self._shutdown(server)
        self._executor.shutdown(wait=True)

    async def _shutdown(self, server: Server) -> None:
        """Stop accepting; idle connections close now, busy ones right after their reply."""
        self._stopping = True
        server.close(close_connections=False)
        idle = [ws for ws, state in self.connections.items() if not state.busy]
        await asyncio.gather(*(ws.close(CloseCode.GOING_AWAY, "server shutting down") for ws in idle))
        await server.wait_closed()

    # ---- HTTP before the upgrade -------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self.api_key is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Api-Key {self.api_key}".encode()):
                logger.warning("refused a connection from %s: wrong or missing API key", connection.remote_address)
                return connection.respond(
                    http.HTTPStatus.UNAUTHORIZED, "this server needs the header 'Authorization: Api-Key <key>'.\n"
                )
        return None

    # ---- one connection ---------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        _no_delay(ws)
        state = self.connections[ws] = _ConnectionState()
        loop = asyncio.get_running_loop()
        try:
            # Metadata first: a connecting robot is answered at once, even while the model is busy.
            await ws.send(packb(self.service.metadata))
            session = await loop.run_in_executor(self._executor, self.service.new_session)  # resets the policy
            prev_total_ms: float | None = None
            while not self._stopping:
                try:
                    data = await asyncio.wait_for(ws.recv(), self.idle_timeout)
                except TimeoutError:
                    await ws.close(CloseCode.NORMAL_CLOSURE, f"idle for {self.idle_timeout:g} s")
                    return
                start = time.perf_counter()
                state.busy = True
                try:
                    if isinstance(data, str):
                        raise WireFormatError("a text frame arrived; send observations as binary msgpack frames.")
                    reply = await loop.run_in_executor(self._executor, session.handle, unpackb(data))
                except VLAError as exc:  # the request's fault or unusable actions: the client is told
                    logger.info("refused a request from %s: %s", ws.remote_address, exc)
                    await self._fail(ws, str(exc))
                    return
                except Exception as exc:  # a bug in a model: report it, keep serving others
                    logger.exception("the policy failed on a request from %s", ws.remote_address)
                    await self._fail(ws, f"internal error: {type(exc).__name__}: {exc}")
                    return
                reply["server_timing"] = {"infer_ms": (time.perf_counter() - start) * 1000}
                if prev_total_ms is not None:  # as openpi: the previous round, which includes its send
                    reply["server_timing"]["prev_total_ms"] = prev_total_ms
                await ws.send(packb(reply))
                state.busy = False
                prev_total_ms = (time.perf_counter() - start) * 1000
            await ws.close(CloseCode.GOING_AWAY, "server shutting down")
        except websockets.ConnectionClosed:
            pass  # the client left (or timed out and closed): nothing to answer
        finally:
            del self.connections[ws]

    @staticmethod
    async def _fail(ws: ServerConnection, reason: str) -> None:
        """openpi's error answer: the reason as a text frame, then close 1011."""
        try:
            await ws.send(reason)
            await ws.close(CloseCode.INTERNAL_ERROR, ERROR_CLOSE_REASON)
        except websockets.ConnectionClosed:
            pass


def _no_delay(ws: ServerConnection) -> None:
    """Replies go out now: Nagle's algorithm meeting delayed ACK stalls small writes ~40 ms."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
