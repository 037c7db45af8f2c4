"""Loopback ports: pick free ones, wait for one to accept connections or to close."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_free(host: str, port: int, what: str) -> None:
    """Fail early, naming the port and its user, instead of a confusing bind error later."""
    if is_open(host, port):
        raise RuntimeError(f"{what}: {host}:{port} is already in use (stop whatever listens there)")


def wait_open(
    host: str,
    port: int,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Wait until host:port accepts connections; fail fast if ``alive()`` says the owner died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_open(host, port):
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited before opening {host}:{port}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not open {host}:{port} within {timeout:.0f} s")
