"""What the bench runs against, started by the bench itself and stopped when it is done:
the local stack (``make stack``: nginx, two gateways, TLS RabbitMQ, history) through the
devstack API, and the embedded ``chatstack serve`` (``make run``)."""

from __future__ import annotations

import os
import resource
import shutil
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from chatstack import capacity
from chatstack.devstack import contract as contract_mod
from chatstack.devstack import nginx, ports, services
from chatstack.devstack.procs import Child, raise_descriptor_ceiling
from chatstack.devstack.stack import GATEWAYS, Stack, StackPorts

from .procstat import process_tree

# Per-connection limits lifted for the bench (docs/local-stack.md, "Settings for the
# services"): one bench connection sends far more than a person would.
BENCH_OVERRIDES = {
    "CHATSTACK_LIMITS__RATE_PER_S": "1000000",
    "CHATSTACK_LIMITS__BURST": "1000000",
    "CHATSTACK_LIMITS__JOIN_RATE_PER_S": "1000",
    "CHATSTACK_LIMITS__JOIN_BURST": "1000",
    "CHATSTACK_GATEWAY__MAX_CONNECTIONS_PER_ADDRESS": "100000",
    "CHATSTACK_LOG__LEVEL": "WARNING",
}


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE of this process (the load generator's client sockets) to
    ``wanted`` if allowed (root may raise the hard limit up to fs.nr_open); returns it.
    The stack's services and nginx size their own limits (chatstack.capacity)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    for new_hard in (max(hard, min(wanted, nr_open)), hard):
        try:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (min(wanted, new_hard), new_hard)
            )
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Target:
    name: str
    host: str
    port: int
    # Process groups whose CPU is measured: "gateway gw-1", "rabbitmq", "nginx", ...
    groups: dict[str, list[int]] = field(default_factory=dict)
    # Gateway instance name (from the welcome frame) -> its process group name.
    gateway_groups: dict[str, str] = field(default_factory=dict)
    history_url: str = ""
    path: str = "/ws"
    dialect: str = "chatstack"  # or "socketio" (the peer)

    def stop(self) -> None:
        raise NotImplementedError


def nginx_must_spread(idle_per_gateway: int) -> bool:
    """Whether the stack's one nginx worker cannot hold the idle case's websockets under
    this process's descriptor ceiling (which the stack tries to raise first): then the
    stack spreads nginx over several workers. Only then, so the room cases keep measuring
    the one-worker nginx of production."""
    contract = contract_mod.load()
    wanted = capacity.proxy(
        {**contract["connections"], "websockets_per_gateway": max(1, idle_per_gateway)},
        GATEWAYS,
    )
    needed = capacity.proxy(contract["connections"], GATEWAYS).worker_rlimit_nofile
    ceiling = raise_descriptor_ceiling(needed)
    if ceiling == resource.RLIM_INFINITY:
        return False
    one = nginx.workers(contract, GATEWAYS, ceiling)
    return one.connections < wanted.worker_connections


class StackTarget(Target):
    def __init__(
        self, state_dir: Path, overrides: dict[str, str], idle_per_gateway: int = 0
    ) -> None:
        self.stack = Stack(
            state_dir,
            stack_ports=StackPorts.free(),
            node_name=f"chatbench-{os.getpid()}",
            environ=overrides,
            spread_nginx=nginx_must_spread(idle_per_gateway),
        )
        self.stack.start()
        super().__init__("stack", ports.LOOPBACK, self.stack.ports.http)
        for gw in self.stack.gateways:
            assert gw.pid is not None
            self.groups[f"gateway {gw.instance}"] = process_tree(gw.pid)
            self.gateway_groups[gw.instance] = f"gateway {gw.instance}"
        assert self.stack.history.pid is not None and self.stack.nginx.pid is not None
        self.groups["history"] = process_tree(self.stack.history.pid)
        server = self.stack.rabbitmq.pids["rabbitmq"]
        assert server is not None
        self.groups["rabbitmq"] = process_tree(server)
        self.groups["nginx"] = process_tree(self.stack.nginx.pid)
        self.history_url = self.stack.url

    def stop(self) -> None:
        self.stack.stop()


class ServeTarget(Target):
    def __init__(self, state_dir: Path, overrides: dict[str, str]) -> None:
        shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True)
        port = ports.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
        env.update(overrides)
        env["CHATSTACK_HISTORY__DATABASE"] = str(state_dir / "history.sqlite3")
        env["CHATSTACK_INSTANCE"] = "serve"
        self.child = Child(
            "chatstack serve",
            [*services.command("serve"), "--host", ports.LOOPBACK, "--port", str(port)],
            state_dir / "serve.log",
            env=env,
            cwd=state_dir,
        )
        self.child.start()
        url = f"http://{ports.LOOPBACK}:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or not self.child.alive():
                    self.child.stop(5)
                    raise RuntimeError(
                        f"chatstack serve did not start: see {self.child.log_file}"
                    )
                time.sleep(0.2)
        super().__init__("serve", ports.LOOPBACK, port, history_url=url)
        assert self.child.pid is not None
        self.groups["serve"] = process_tree(self.child.pid)
        self.gateway_groups["serve"] = "serve"

    def stop(self) -> None:
        self.child.stop(15)


def start(
    name: str,
    var_dir: Path,
    extra: dict[str, str] | None = None,
    idle_per_gateway: int = 0,
) -> Target:
    # The caller's own CHATSTACK_* variables win (e.g. statsd.host to watch the gateways'
    # loop stalls during a case), as they do for `make stack`.
    mine = {k: v for k, v in os.environ.items() if k.startswith("CHATSTACK_")}
    overrides = {**BENCH_OVERRIDES, **(extra or {}), **mine}
    if name == "stack":
        return StackTarget(var_dir / "stack", overrides, idle_per_gateway)
    if name == "serve":
        return ServeTarget(var_dir / "serve", overrides)
    raise ValueError(f"unknown target {name!r}: expected stack or serve")
