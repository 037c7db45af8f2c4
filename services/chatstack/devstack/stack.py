"""The local production-like stack: RabbitMQ, chat-history, two chat-gateways, nginx.

``Stack`` starts them in dependency order (PKI → broker → history → gateways → nginx),
waits for each to be ready, and stops them in reverse. It also offers what the tests need
to hurt the stack on purpose: kill -9 a gateway, stop history, restart the broker.
``make stack`` (``python -m chatstack.devstack``) and the ``stack`` pytest fixture both
drive this class, so what a person runs by hand is what CI tests.
"""

from __future__ import annotations

import hashlib
import logging
import resource
import shutil
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatstack import capacity
from chatstack.devstack import contract as contract_mod
from chatstack.devstack import nginx, pki, ports, procs, rabbitmq, services
from chatstack.devstack.contract import Contract
from chatstack.devstack.netns import Namespace

log = logging.getLogger(__name__)

GATEWAYS = 2
NODE_NAME = "chatstack-stack"
# Keys the stack writes that a CHATSTACK_* variable may still override (a preference, not
# wiring): every other key the stack writes is refused from the environment.
OVERRIDABLE_KEYS = {"log.level"}

# Command → Debian package, for the prerequisites message.
SYSTEM_TOOLS = {
    "openssl": "openssl",
    "nginx": "nginx",
    "epmd": "rabbitmq-server",
}


def missing_prerequisites() -> list[str]:
    """Debian packages this machine lacks for the stack (empty when all is there)."""
    missing = []
    for tool, package in SYSTEM_TOOLS.items():
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            missing.append(package)
    if rabbitmq.available() is not None and "rabbitmq-server" not in missing:
        missing.append("rabbitmq-server")
    return missing


def check_prerequisites() -> None:
    """Raise naming the exact install command when a system package is missing."""
    missing = missing_prerequisites()
    if missing:
        raise RuntimeError(
            f"missing system packages: {', '.join(missing)}; install them with:\n"
            f"    apt-get update && apt-get install -y {' '.join(missing)}"
        )
    for role in services.STACK_ROLES:
        services.command(role)  # raises with "run make venv" when the services are missing


@dataclass(frozen=True)
class StackPorts:
    """Listening ports of one stack (all on loopback)."""

    http: int
    gateways: tuple[int, ...]
    history: int
    amqps: int

    @classmethod
    def from_contract(cls, contract: Contract, gateways: int = GATEWAYS) -> StackPorts:
        """``make stack``: the contract's ports (the ones the docs and the NixOS hosts use)."""
        p = contract["ports"]
        return cls(
            http=int(p["stack_http"]),
            gateways=tuple(contract_mod.gateway_port(contract, n) for n in range(1, gateways + 1)),
            history=int(p["history"]),
            amqps=int(p["amqps"]),
        )

    @classmethod
    def free(cls, gateways: int = GATEWAYS) -> StackPorts:
        """Tests: ports free right now, so a stack left running by hand does not interfere."""
        return cls(
            http=ports.free_port(),
            gateways=tuple(ports.free_port() for _ in range(gateways)),
            history=ports.free_port(),
            amqps=ports.free_port(),
        )


def default_broker_dir(state_dir: Path) -> Path:
    """``state_dir/rabbitmq`` when the rabbitmq user can reach it, else a fixed /tmp path.

    A checkout under a 0700 home (/root) is not reachable by the ``rabbitmq`` user; the
    /tmp fallback is derived from the state dir so that data survives a restart of the stack.
    """
    preferred = state_dir / "rabbitmq"
    if rabbitmq.unreachable_reason(preferred) is None:
        return preferred
    tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"chatstack-stack-rabbitmq-{tag}"


class Stack:
    """Handle on one running local stack (see the ``stack`` fixture in tests/conftest.py)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        stack_ports: StackPorts | None = None,
        broker_dir: Path | None = None,
        node_name: str = NODE_NAME,
        static_dir: Path | None = None,
        contract: Contract | None = None,
        partitionable: bool = False,
        extra: dict[str, dict[str, dict[str, Any]]] | None = None,
        environ: Mapping[str, str] | None = None,
        spread_nginx: bool = False,
    ) -> None:
        """``partitionable``: history and each gateway in a network namespace of its own
        (chatstack.devstack.netns), so a test can cut one of them off the broker.
        ``extra``: role → config tables merged into that role's config.
        ``environ``: the caller's environment, whose ``CHATSTACK_*`` config variables
        (``services.environment_overrides``) the services get on top of the stack's config;
        None passes none (the tests' stacks).
        ``spread_nginx``: where a process may not hold the descriptors nginx's capacity
        needs (and cannot be allowed to: no CAP_SYS_RESOURCE), spread it over several
        workers (the bench's idle case) instead of one worker holding fewer websockets."""
        self.contract = contract if contract is not None else contract_mod.load()
        self.partitionable = partitionable
        self.spread_nginx = spread_nginx
        # The hard RLIMIT_NOFILE the children inherit (None: unlimited), once started.
        self.descriptor_ceiling: int | None = None
        self.extra = extra or {}
        # Index 0: history; n: gateway n.
        self.namespaces: list[Namespace] = []
        self.environ = dict(environ or {})
        self.overrides: dict[str, str] = {}
        self.ignored_variables: list[str] = []
        self.state_dir = state_dir
        self.ports = (
            stack_ports if stack_ports is not None else StackPorts.from_contract(self.contract)
        )
        self.broker_dir = broker_dir if broker_dir is not None else default_broker_dir(state_dir)
        self.node_name = node_name
        self.static_dir = static_dir if static_dir is not None else nginx.client_dir()
        self.services_dir = state_dir / "services"
        self.url = f"http://{ports.LOOPBACK}:{self.ports.http}"
        self.pki: pki.Pki | None = None
        self._rabbitmq: rabbitmq.Broker | None = None
        self._gateways: list[services.Service] = []
        self._history: services.Service | None = None
        self._nginx: nginx.Nginx | None = None
        self.timings: dict[str, float] = {}

    # --- components -------------------------------------------------------------------

    @property
    def rabbitmq(self) -> rabbitmq.Broker:
        if self._rabbitmq is None:
            raise RuntimeError("the stack is not started")
        return self._rabbitmq

    @property
    def history(self) -> services.Service:
        if self._history is None:
            raise RuntimeError("the stack is not started")
        return self._history

    def gateway(self, n: int) -> services.Service:
        """Gateway instance ``n`` (1-based, as in the contract: port gateway + n - 1)."""
        if not 1 <= n <= len(self._gateways):
            raise IndexError(f"gateway {n}: this stack has gateways 1..{len(self._gateways)}")
        return self._gateways[n - 1]

    @property
    def gateways(self) -> list[services.Service]:
        return list(self._gateways)

    @property
    def nginx(self) -> nginx.Nginx:
        if self._nginx is None:
            raise RuntimeError("the stack is not started")
        return self._nginx

    @property
    def origins(self) -> list[str]:
        """Origins a browser may use for this stack (both loopback spellings)."""
        return [self.url, f"http://localhost:{self.ports.http}"]

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> dict[str, float]:
        """Start everything and wait until each part is ready; returns seconds per step."""
        check_prerequisites()
        self.check_ports()
        self.allow_descriptors()
        began = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_namespaces()
            self._start_pki()
            self._start_broker()
            self._start_services()
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - began
        return dict(self.timings)

    def listening_ports(self) -> list[tuple[str, str, int]]:
        """(what, host, port) of every listener this stack opens on the host's loopback
        (services in network namespaces listen there instead, on addresses of their own)."""
        wanted = [("nginx", ports.LOOPBACK, self.ports.http)]
        wanted.append(("RabbitMQ amqps", ports.LOOPBACK, self.ports.amqps))
        if not self.partitionable:
            wanted.append(("chat-history", ports.LOOPBACK, self.ports.history))
            wanted += [
                (f"chat-gateway gw-{n}", ports.LOOPBACK, port)
                for n, port in enumerate(self.ports.gateways, start=1)
            ]
        return wanted

    def check_ports(self) -> None:
        """Every port free, or one error naming all the taken ones, before anything starts
        (RabbitMQ first would otherwise be up before a taken gateway port is noticed)."""
        taken = [
            f"{what} {host}:{port}"
            for what, host, port in self.listening_ports()
            if ports.is_open(host, port)
        ]
        if taken:
            raise RuntimeError(
                f"port(s) already in use, nothing started: {', '.join(taken)} "
                "(stop whatever listens there, e.g. another `make stack`)"
            )

    def descriptors_needed(self) -> int:
        """The largest descriptor limit a part of this stack needs to hold the contract's
        capacity (chatstack.capacity): nginx's worker_rlimit_nofile for all the gateways,
        or a service's http.max_connections (default) + fd_reserve."""
        connections = self.contract["connections"]
        service = capacity.service_nofile(connections, capacity.max_connections(connections))
        balancer = capacity.proxy(connections, len(self.ports.gateways))
        return max(service, balancer.worker_rlimit_nofile)

    def allow_descriptors(self) -> None:
        """Let the children reach their derived descriptor limits: raise the hard limit
        they inherit (as root); otherwise say once what the stack will not hold."""
        needed = self.descriptors_needed()
        hard = procs.raise_descriptor_ceiling(needed)
        self.descriptor_ceiling = None if hard == resource.RLIM_INFINITY else hard
        if hard != resource.RLIM_INFINITY and hard < needed:
            nginx_note = (
                "nginx spreads its connections over several workers"
                if self.spread_nginx
                else "so does nginx (one worker at that limit)"
            )
            log.warning(
                "file descriptor hard limit %d is below the %d the stack needs for"
                " connections.websockets_per_gateway = %s and cannot be raised here (root"
                " with CAP_SYS_RESOURCE can): a gateway holds fewer websockets; %s",
                hard,
                needed,
                self.contract["connections"]["websockets_per_gateway"],
                nginx_note,
            )

    def _timed(self, step: str, began: float) -> None:
        self.timings[step] = time.monotonic() - began

    def _start_pki(self) -> None:
        began = time.monotonic()
        self.pki = pki.make_pki(self.state_dir / "pki")
        self._timed("pki", began)

    def _start_namespaces(self) -> None:
        if not self.partitionable:
            return
        self.namespaces = [Namespace.for_index(i) for i in range(len(self.ports.gateways) + 1)]
        for namespace in self.namespaces:
            namespace.create()

    def namespace(self, service: services.Service) -> Namespace:
        """The network namespace ``service`` runs in (partitionable stacks only)."""
        if service.netns is None:
            raise RuntimeError("this stack is not partitionable")
        return service.netns

    def _start_broker(self) -> None:
        assert self.pki is not None
        spec = rabbitmq.BrokerSpec.on_free_ports(
            self.broker_dir,
            self.node_name,
            self.pki,
            self.contract,
            amqps_port=self.ports.amqps,
            extra_hosts=tuple(n.host_address for n in self.namespaces),
        )
        self._rabbitmq = rabbitmq.Broker(spec, self.contract)
        self._rabbitmq.provision()
        self.timings["rabbitmq"] = self._rabbitmq.start()

    def _document(
        self, role: str, instance: str, port: int, netns: Namespace | None = None
    ) -> dict[str, Any]:
        document = services.render_config(
            self.contract,
            role,
            instance=instance,
            port=port,
            broker=self.rabbitmq,
            allowed_origins=self.origins,
            database=self.state_dir / "history" / "history.sqlite3",
            host=netns.address if netns is not None else ports.LOOPBACK,
            extra=self.extra.get(role),
        )
        if netns is not None:
            # The broker through the veth; its certificate still names the loopback address.
            document["broker"]["host"] = netns.host_address
            document["broker"]["server_name"] = self.rabbitmq.host
        return document

    def _start_services(self) -> None:
        began = time.monotonic()
        history_dir = self.state_dir / "history"
        history_dir.mkdir(parents=True, exist_ok=True)
        # Chat history is private: also tighten a directory an older stack made 0755 (new
        # database files are created 0600 by the store itself).
        history_dir.chmod(0o700)
        for leftover in history_dir.glob("history.sqlite3*"):
            leftover.chmod(0o600)
        spaces: list[Namespace | None] = list(self.namespaces) or [None] * (
            len(self.ports.gateways) + 1
        )
        specs = [("history", "history", self.ports.history)] + [
            ("gateway", f"gw-{n}", port) for n, port in enumerate(self.ports.gateways, start=1)
        ]
        documents = [
            self._document(*spec, netns) for spec, netns in zip(specs, spaces, strict=True)
        ]
        owned = set().union(*(services.config_keys(d) for d in documents)) - OVERRIDABLE_KEYS
        self.overrides, self.ignored_variables = services.environment_overrides(self.environ, owned)
        made = [
            services.Service(
                role, instance, port, self.services_dir, document, self.overrides, netns
            )
            for (role, instance, port), document, netns in zip(
                specs, documents, spaces, strict=True
            )
        ]
        self._history, self._gateways = made[0], made[1:]
        every = [self._history, *self._gateways]
        for service in every:
            service.start()
        # Python start-up dominates: wait for all of them at once.
        with ThreadPoolExecutor(len(every)) as pool:
            for future in [pool.submit(s.wait_status, "/readyz", 200) for s in every]:
                future.result()
        self._timed("services", began)

    def _start_nginx(self) -> None:
        began = time.monotonic()
        site = nginx.Site(
            listen=nginx.Upstream(ports.LOOPBACK, self.ports.http),
            gateways=tuple(nginx.Upstream(g.host, g.port) for g in self._gateways),
            history=nginx.Upstream(self.history.host, self.history.port),
            static_dir=self.static_dir,
            prefix=self.state_dir / "nginx",
            workers=nginx.workers(
                self.contract,
                len(self._gateways),
                self.descriptor_ceiling,
                spread=self.spread_nginx,
            ),
        )
        self._nginx = nginx.Nginx(self.contract, site)
        self._nginx.start()
        self._timed("nginx", began)

    def stop(self) -> None:
        """Stop in reverse order: nginx, gateways (drain), history, broker. Safe to repeat."""
        if self._nginx is not None:
            self._nginx.stop()
        for gw in self._gateways:
            gw.stop()
        if self._history is not None:
            self._history.stop()
        if self._rabbitmq is not None:
            self._rabbitmq.stop()
        for namespace in self.namespaces:
            namespace.delete()

    # --- what the failure tests do ----------------------------------------------------

    def kill_gateway(self, n: int) -> None:
        """kill -9 gateway ``n``: no drain, its sockets just drop."""
        self.gateway(n).kill()

    def start_gateway(self, n: int) -> None:
        """Start gateway ``n`` again, wait until it is ready, and make nginx use it at once.

        nginx skips a server that failed for ``proxy.fail_timeout_s``; a reload gives fresh
        workers that know nothing of the failure, so the next connections spread again.
        """
        gw = self.gateway(n)
        gw.start()
        gw.wait_status("/readyz", 200)
        self.nginx.reload()

    def stop_history(self) -> None:
        self.history.stop()

    def start_history(self) -> None:
        self.history.start()
        self.history.wait_status("/readyz", 200)

    def restart_broker(self, down_s: float = 0.0) -> float:
        """Stop RabbitMQ gracefully, stay down ``down_s`` seconds, start it; start-up seconds."""
        self.rabbitmq.stop()
        time.sleep(down_s)
        return self.rabbitmq.start()

    def ensure_running(self) -> None:
        """Bring back whatever a test stopped or killed (the broker first), ready again."""
        self.rabbitmq.ensure_running()
        if not self.history.running():
            self.history.stop()  # reap the dead process before starting anew
            self.start_history()
        for gw in self._gateways:
            if not gw.running():
                gw.stop()
                gw.start()
        for service in [self.history, *self._gateways]:
            service.wait_status("/readyz", 200)
        # Always: a gateway that refused handshakes while cut off from the broker (503) is
        # skipped by nginx for proxy.fail_timeout_s; the next test starts with fresh workers.
        self.nginx.reload()

    def components(self) -> list[tuple[str, str, Path]]:
        """(name, address, log file) of every part, for status lines."""
        rows = [
            (
                f"rabbitmq {self.rabbitmq.node}",
                f"amqps://{self.rabbitmq.host}:{self.rabbitmq.amqps_port}"
                f" (vhost {self.rabbitmq.vhost}, no plaintext listener)",
                self.rabbitmq.log_file,
            ),
            ("chat-history", self.history.url, self.history.log_file),
        ]
        rows += [(f"chat-gateway {g.instance}", g.url, g.log_file) for g in self._gateways]
        rows.append(("nginx", self.url, self.nginx.site.error_log))
        return rows

    def pids(self) -> dict[str, int]:
        """Process (group) ids of the running parts, for ``make stack-stop``'s safety net."""
        found: dict[str, int | None] = {
            "nginx": self._nginx.pid if self._nginx else None,
            **{f"gateway-{g.instance}": g.pid for g in self._gateways},
            "history": self._history.pid if self._history else None,
            **(self._rabbitmq.pids if self._rabbitmq else {}),
        }
        return {name: pid for name, pid in found.items() if pid is not None}
