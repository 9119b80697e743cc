"""Faults over loopback, each followed by a good request from another client that must still succeed."""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
import threading
import time

import msgpack
import numpy as np
import pytest
from serving_fixtures import make_server, observation, openpi_observation
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from vla_core.serving.client import PolicyClient, PolicyServerError
from vla_core.serving.msgpack_numpy import packb


def still_serving(server) -> None:
    with PolicyClient(server.url, timeout=30) as client:
        assert client.act(observation()).shape == (4, 7)


def raw_handshake(port: int) -> socket.socket:
    """A websocket opened by hand, so frames the library would never send can be written."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def close_code(sock: socket.socket) -> int:
    """Read frames until the server's close frame; return its code."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("the server dropped the connection without a close frame")
        data += chunk
        while len(data) >= 2:
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            start = 2 + {126: 2, 127: 8}.get(length, 0)
            if length == 126:
                length = struct.unpack(">H", data[2:4])[0]
            elif length == 127:
                length = struct.unpack(">Q", data[2:10])[0]
            if len(data) < start + length:
                break
            if opcode == 0x8:
                return struct.unpack(">H", data[start : start + 2])[0]
            data = data[start + length :]


def frame_header(length: int, rsv1: bool = False) -> bytes:
    """A masked binary frame header (mask key 0, so the payload is sent as is)."""
    first = 0x80 | (0x40 if rsv1 else 0) | 0x2
    if length < 126:
        return bytes([first, 0x80 | length]) + bytes(4)
    if length < 2**16:
        return bytes([first, 0x80 | 126]) + struct.pack(">H", length) + bytes(4)
    return bytes([first, 0x80 | 127]) + struct.pack(">Q", length) + bytes(4)


ARRAY_MAP = {b"__ndarray__": True, b"data": b"\x80\x04K\x01.", b"dtype": "|O", b"shape": [1]}
BAD_MESSAGES = {
    "malformed msgpack": (b"\xc1\xc1", "not valid msgpack"),
    "a pickle": (b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.", "not valid msgpack"),
    "object dtype": (msgpack.packb({"observation/state": ARRAY_MAP}, use_bin_type=True), "dtype '|O' is refused"),
    "8 TB declared": (
        msgpack.packb({"x": {**ARRAY_MAP, b"dtype": "<f8", b"shape": [2**40]}}, use_bin_type=True),
        "needs 8796093022208 bytes but carries 5",
    ),
    "NaN state": (packb({**openpi_observation(), "observation/state": np.full(8, np.nan, np.float32)}), "NaN or inf"),
    "inf state": (packb({**openpi_observation(), "observation/state": np.full(8, np.inf, np.float32)}), "NaN or inf"),
    "wrong rank": (packb({**openpi_observation(), "observation/state": np.zeros((1, 8))}), "1-D vector"),
    "wrong dims": (packb({**openpi_observation(), "observation/state": np.zeros(9)}), "has 9 values; the model"),
    "missing key": (packb({k: v for k, v in openpi_observation().items() if k != "prompt"}), "missing 'task'"),
    "unknown key": (packb({**openpi_observation(), "extra": 1}), r"unknown key\(s\) \['extra'\]"),
}


@pytest.mark.parametrize("case", BAD_MESSAGES)
def test_a_bad_message_gets_its_reason_then_close_1011_and_the_server_serves_on(server, case):
    data, reason = BAD_MESSAGES[case]
    with connect(server.url, compression=None, legacy=True) as ws:
        ws.recv(timeout=10)  # metadata
        ws.send(data)
        answer = ws.recv(timeout=30)
        assert isinstance(answer, str)
        assert re.search(reason, answer), answer
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1011
    still_serving(server)


def test_frames_over_the_size_limit_or_compressed_are_closed_unread(policy):
    with make_server(policy, max_message_bytes=2**20) as server:
        big = raw_handshake(server.port)
        big.sendall(frame_header(2**40))  # a 1 TB declaration: refused from the header alone
        assert close_code(big) == 1009
        compressed = raw_handshake(server.port)
        compressed.sendall(frame_header(4, rsv1=True) + b"\x00\x00\x00\x00")  # deflate was not negotiated
        assert close_code(compressed) == 1002
        with connect(server.url, compression=None, legacy=True) as ws:
            ws.recv(timeout=10)
            ws.send(b"\x00" * (2**20 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1009
        big.close(), compressed.close()
        still_serving(server)


def test_a_client_that_disconnects_mid_message_costs_nothing(server):
    sock = raw_handshake(server.port)
    sock.sendall(frame_header(1000) + b"\x00" * 10)
    sock.close()
    still_serving(server)
    deadline = time.monotonic() + 10
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.connections


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_idle_and_stalled_connections_are_closed_after_the_timeout(policy):
    threads, memory = threading.active_count(), rss_mb()
    with make_server(policy, idle_timeout=1.0, open_timeout=1.0) as server:
        stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(50)]  # no handshake
        idle = [raw_handshake(server.port) for _ in range(50)]  # open websockets that never send
        deadline = time.monotonic() + 5
        while len(server.connections) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(server.connections) == 50
        assert threading.active_count() <= threads + 2  # the loop and the model thread, none per connection
        assert rss_mb() - memory < 100
        for sock in idle:
            assert close_code(sock) == 1000  # after idle_timeout
        for sock in stalled:
            while sock.recv(4096):  # the handshake timeout: the server hangs up
                pass
        for sock in idle + stalled:
            sock.close()
        deadline = time.monotonic() + 10  # handlers end once the sockets are gone
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.connections
        still_serving(server)


def test_sixteen_simultaneous_connects_are_none_delayed(server):
    barrier, times, errors = threading.Barrier(16), [], []

    def robot() -> None:
        barrier.wait()
        start = time.monotonic()
        try:
            with PolicyClient(server.url, timeout=60) as client:
                client.metadata()
                times.append(time.monotonic() - start)
                client.act(observation())
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=robot) for _ in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not errors and len(times) == 16
    assert max(times) < 0.9, times  # a SYN retransmit (full backlog) would cost 1 s


def test_a_client_timeout_sends_once_and_says_so(policy):
    calls = []

    class Slow:
        processor, vla = policy.processor, policy.vla

        def act(self, observation, noise=None):
            calls.append(1)
            time.sleep(1.5)
            return np.zeros((4, 7), np.float32)

    with make_server(Slow()) as server:
        client = PolicyClient(server.url, timeout=0.5)
        with pytest.raises(PolicyServerError, match=r"within 0\.5 s\. The request was sent once and not re-sent"):
            client.act(observation())
        with PolicyClient(server.url, timeout=30) as other:
            assert other.act(observation()).shape == (4, 7)
        assert len(calls) == 2  # the timed-out request ran once, the other client's once
        client.timeout = 30
        assert client.act(observation()).shape == (4, 7) and len(calls) == 3  # the next call reconnects
        client.close()
