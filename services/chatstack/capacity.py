"""Connection and descriptor limits, all derived from the contract's ``[connections]``.

One number, ``websockets_per_gateway``, sizes everything: a service's connection cap (the
default ``http.max_connections``) and its file-descriptor limit, and a load balancer's
``worker_connections`` and ``worker_rlimit_nofile`` for the gateways behind it. The same
formula is written in Nix (``nix/capacity.nix``, for the NixOS units and load balancer);
tests/repo/test_capacity.py evaluates both and fails when they disagree, so change them
together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

KEYS = ("websockets_per_gateway", "http_headroom", "fd_reserve")


def _number(connections: Mapping[str, object], key: str) -> int:
    value = connections.get(key)
    # bool is an int in Python, never a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"contract connections.{key} = {value!r}: expected an integer >= 0")
    if key == "websockets_per_gateway" and value < 1:
        raise ValueError(f"contract connections.{key} = {value!r}: expected an integer >= 1")
    return value


def max_connections(connections: Mapping[str, object]) -> int:
    """Connections one service process holds (the default ``http.max_connections``): a
    gateway's websockets plus the other connections beside them."""
    return _number(connections, "websockets_per_gateway") + _number(connections, "http_headroom")


def service_nofile(connections: Mapping[str, object], cap: int) -> int:
    """File descriptors (systemd ``LimitNOFILE``) of a service whose connection cap is
    ``cap``: one per connection plus the reserve (broker, logs, SQLite, listeners)."""
    return cap + _number(connections, "fd_reserve")


@dataclass(frozen=True)
class ProxyCapacity:
    """One nginx (one worker process) in front of ``gateways`` gateways."""

    websockets: int
    worker_connections: int
    worker_rlimit_nofile: int  # also the nginx unit's LimitNOFILE


def proxy(connections: Mapping[str, object], gateways: int) -> ProxyCapacity:
    """The capacity of a load balancer with ``gateways`` gateways behind it: every websocket
    holds two nginx connections (client and gateway side), so do proxied API requests."""
    if isinstance(gateways, bool) or not isinstance(gateways, int) or gateways < 1:
        raise ValueError(f"a load balancer needs at least one gateway, got {gateways!r}")
    websockets = gateways * _number(connections, "websockets_per_gateway")
    worker_connections = 2 * (websockets + _number(connections, "http_headroom"))
    return ProxyCapacity(
        websockets=websockets,
        worker_connections=worker_connections,
        worker_rlimit_nofile=worker_connections + _number(connections, "fd_reserve"),
    )
