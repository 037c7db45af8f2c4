"""The capacity formula is written twice, in Python (services/chatstack/capacity.py: the
services' default connection cap, the local stack's nginx and descriptor limits) and in Nix
(nix/capacity.nix: the NixOS units' LimitNOFILE and the load balancer). Both are evaluated
here, the Nix one with `nix-instantiate --eval` (pure: no nixpkgs needed), for the real
contract and for made-up ones, over several gateway counts; any difference fails.
nix-instantiate missing skips, or fails under CI=true (test_nix_parse.py's fixture).
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from typing import Any

import pytest
from chatstack import capacity
from chatstack import contract as contract_mod
from test_nix_parse import REPO, nix_eval, nix_instantiate

__all__ = ["nix_instantiate"]  # the fixture, used by name

CAPACITY_NIX = REPO / "nix" / "capacity.nix"
GATEWAY_COUNTS = [1, 2, 3, 7, 64]
CAPS = [1, 500, 21000]
MADE_UP = [
    {"websockets_per_gateway": 1, "http_headroom": 0, "fd_reserve": 0},
    {"websockets_per_gateway": 5000, "http_headroom": 17, "fd_reserve": 4096},
    {"websockets_per_gateway": 123457, "http_headroom": 999, "fd_reserve": 1},
]


def python_side(connections: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_connections": capacity.max_connections(connections),
        "service_nofile": [capacity.service_nofile(connections, cap) for cap in CAPS],
        "proxy": [asdict(capacity.proxy(connections, n)) for n in GATEWAY_COUNTS],
    }


def nix_side(nix: str, connections_expr: str) -> Any:
    return nix_eval(
        nix,
        f"let c = import {CAPACITY_NIX} ({connections_expr}); in {{"
        " max_connections = c.max_connections;"
        f" service_nofile = map c.service_nofile {nix_list(CAPS)};"
        f" proxy = map c.proxy {nix_list(GATEWAY_COUNTS)}; }}",
    )


def nix_list(values: list[int]) -> str:
    return "[ " + " ".join(str(v) for v in values) + " ]"


def nix_attrs(values: dict[str, int]) -> str:
    return "{ " + " ".join(f"{k} = {v};" for k, v in values.items()) + " }"


def test_the_real_contract_gives_the_same_limits_in_python_and_nix(
    nix_instantiate: str,
) -> None:
    connections = contract_mod.section("connections")
    expected = python_side(connections)
    # The Nix side reads the contract the way the modules do (nix/contract.nix).
    got = nix_side(nix_instantiate, f"(import {REPO}/nix/contract.nix).connections")
    assert got == expected
    # Not vacuous: the target of issue 10, two gateways behind one nginx.
    per_gateway = connections["websockets_per_gateway"]
    assert per_gateway >= 20000
    two = capacity.proxy(connections, 2)
    assert two.websockets == 2 * per_gateway
    assert two.worker_connections >= 2 * two.websockets
    assert two.worker_rlimit_nofile > two.worker_connections
    assert capacity.max_connections(connections) > per_gateway


@pytest.mark.parametrize(
    "connections", MADE_UP, ids=lambda c: str(c["websockets_per_gateway"])
)
def test_made_up_contracts_give_the_same_limits_in_python_and_nix(
    nix_instantiate: str, connections: dict[str, int]
) -> None:
    assert nix_side(nix_instantiate, nix_attrs(connections)) == python_side(connections)


def nix_error(nix: str, expr: str) -> str:
    done = subprocess.run(
        [nix, "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0, f"{expr} evaluated: {done.stdout}"
    return done.stderr


GOOD = {"websockets_per_gateway": 10, "http_headroom": 1, "fd_reserve": 1}


@pytest.mark.parametrize(
    ("key", "value", "nix_value"),
    [
        ("websockets_per_gateway", 0, "0"),
        ("http_headroom", -1, "(-1)"),
        ("fd_reserve", "1024", '"1024"'),
    ],
)
def test_both_sides_refuse_a_contract_they_cannot_size_from(
    nix_instantiate: str, key: str, value: object, nix_value: str
) -> None:
    with pytest.raises(ValueError, match=f"connections.{key}"):
        python_side({**GOOD, key: value})
    attrs = " ".join(f"{k} = {nix_value if k == key else v};" for k, v in GOOD.items())
    expr = f"(import {CAPACITY_NIX} {{ {attrs} }}).proxy 2"
    assert f"connections.{key}" in nix_error(nix_instantiate, expr)


def test_both_sides_refuse_a_balancer_without_gateways(nix_instantiate: str) -> None:
    with pytest.raises(ValueError, match="at least one gateway"):
        capacity.proxy(GOOD, 0)
    expr = f"(import {CAPACITY_NIX} {nix_attrs(GOOD)}).proxy 0"
    assert "at least one gateway" in nix_error(nix_instantiate, expr)


def test_the_nix_modules_size_from_nix_capacity() -> None:
    """The modules read the derived numbers, not numbers of their own: the load balancer
    from the length of its gateway list, the service units through modules/lib.nix."""
    lib_nix = (REPO / "modules" / "lib.nix").read_text(encoding="utf-8")
    balancer = (REPO / "modules" / "load-balancer.nix").read_text(encoding="utf-8")
    assert "import ../nix/capacity.nix contract.connections" in lib_nix
    assert "LimitNOFILE = capacity.service_nofile maxConnections;" in lib_nix
    assert "default = capacity.max_connections;" in lib_nix
    assert (
        "capacity = chatLib.capacity.proxy (builtins.length cfg.gatewayServers);"
        in balancer
    )
    for directive in ("worker_connections", "worker_rlimit_nofile"):
        assert f"{directive} ${{toString capacity.{directive}}};" in balancer
    assert "LimitNOFILE = capacity.worker_rlimit_nofile;" in balancer
