"""Checking a server address (`vla serve --host/--port`) before a model is loaded for it."""

from __future__ import annotations

import errno
import socket

from vla_core.errors import ConfigError, ResourceError, VLAError


def check_bind_address(host: str, port: int) -> None:
    """Raise a VLAError naming the flag when an IPv4 TCP server cannot listen on (host, port).

    Bad input (exit 2): a port outside 0-65535, a host name that does not resolve, an IPv6
    address (the server listens on IPv4), an address this machine does not have. The
    environment (exit 1): the port is taken or needs privileges. The trial socket is closed
    at once; a port taken in between is reported by `bind_error` when the server binds.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port; use 1-65535, or 0 to pick a free one.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            f"--host '{host}' is not an address or a name this machine can resolve ({exc}). Use 127.0.0.1 (this "
            "machine only), 0.0.0.0 (every interface) or one of this machine's addresses."
        ) from None
    if not any(family == socket.AF_INET for family, *_ in infos):
        raise ConfigError(
            f"--host '{host}' is IPv6 only, and vla serve listens on IPv4. Use 127.0.0.1 (this machine only) or "
            "0.0.0.0 (every interface)."
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as trial:
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
        try:
            trial.bind((host, port))
        except OSError as exc:
            raise bind_error(exc, host, port) from None


def bind_error(exc: OSError, host: str, port: int) -> VLAError:
    """The VLAError for a failed bind of (host, port)."""
    if exc.errno == errno.EADDRINUSE:
        return ResourceError(
            f"--port {port} is already in use on {host}: another program (or another vla serve) listens there. "
            "Stop it, or pick another port (--port 0 picks a free one)."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            f"--host {host} is not an address of this machine, so nothing can listen on it. Use 127.0.0.1, 0.0.0.0 "
            "or one of this machine's addresses (ip addr)."
        )
    if exc.errno == errno.EACCES:
        return ResourceError(
            f"--port {port} on {host} needs privileges (ports below 1024 are reserved). Use a port above 1023."
        )
    return ResourceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}.")
