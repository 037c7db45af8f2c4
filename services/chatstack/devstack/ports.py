"""Loopback ports: pick free ones, wait for one to accept connections or to close."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"


# Listening ports are picked from here up to the start of the kernel's ephemeral range.
PICK_FROM = 20000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody uses right now (a race with another picker is possible but rare).

    Taken below the ephemeral range (ip_local_port_range), where the kernel never picks
    the source port of an outgoing connection: a port from inside it could be taken by one
    between this pick and the bind of whoever listens on it, which happened to RabbitMQ's
    distribution port while tens of thousands of loopback connections came and went.
    """
    start = _ephemeral_start()
    candidates = range(PICK_FROM, start) if start > PICK_FROM + 1000 else range(0)
    for port in random.sample(candidates, min(50, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
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
