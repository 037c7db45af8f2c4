"""Loopback ports: pick free ones, wait for one to accept connections or to close."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"


# Where listening ports are picked: below the kernel's ephemeral range, so that a port handed
# out here is not also taken, a moment later, as the source port of some outgoing connection
# (a bench or a test opening thousands of loopback connections made RabbitMQ's distribution
# port collide that way: "dist_port_already_used").
_LISTEN_PORTS_LOW = 10000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody uses right now, outside the ephemeral range when there is room below it
    (the pick is random, so separate test runs rarely try the same one; a race remains
    possible but rare)."""
    high = _ephemeral_low() - 1
    if high - _LISTEN_PORTS_LOW >= 1000:
        for _ in range(200):
            port = random.randint(_LISTEN_PORTS_LOW, high)
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
