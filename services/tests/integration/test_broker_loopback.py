"""The broker settings of modules/message-queue.nix, on a real RabbitMQ.

The NixOS module renders rabbitmq.conf with both ``listeners.tcp=none`` (ours) and
``listeners.tcp.1=127.0.0.1:5672`` (nixpkgs' rabbitmq module always defines it, and
``configItems`` cannot drop a key); rabbit.schema's translation returns no TCP listener when
``listeners.tcp`` is ``none``. The module binds the Erlang distribution to the address the
host name resolves to (NixOS maps it to 127.0.0.2) and epmd to 127.0.0.1 and that address;
rabbitmqctl's own distribution listener goes to 127.0.0.1 (``RABBITMQ_CTL_ERL_ARGS``).

Here the node is ``rabbit@127.0.0.2`` (long names): the host part resolves to 127.0.0.2
without touching /etc/hosts, as ``rabbit@<host name>`` does on a NixOS host. The test checks
that the plain listener is absent, that the distribution answers only on 127.0.0.2, and that
rabbitmqctl works through that setup.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatstack.devstack import contract as contract_mod
from chatstack.devstack import pki, ports
from chatstack.devstack import rabbitmq as rmq
from chatstack.devstack.procs import Child

pytestmark = pytest.mark.integration

NODE_ADDRESS = "127.0.0.2"  # what NixOS's /etc/hosts maps the host name to
CTL_ERL_ARGS = "-kernel inet_dist_use_interface {127,0,0,1}"  # modules/lib.nix


class NixosLikeBroker(rmq.Broker):
    """A devstack broker with the listener and distribution settings of the NixOS module."""

    plain_port = 0

    @property
    def node(self) -> str:
        return f"rabbit@{NODE_ADDRESS}"

    def _config(self, tls: Path, definitions_file: Path) -> str:
        lines = super()._config(tls, definitions_file).splitlines()
        # As lib.generators.toKeyValue renders the module's configItems (sorted keys).
        at = lines.index("listeners.tcp = none")
        lines[at : at + 1] = [
            "listeners.tcp=none",
            f"listeners.tcp.1=127.0.0.1:{self.plain_port}",
        ]
        return "\n".join(lines) + "\n"

    def _env(self) -> dict[str, str]:
        env = super()._env()
        address = "{" + NODE_ADDRESS.replace(".", ",") + "}"
        env.update(
            RABBITMQ_USE_LONGNAME="true",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                f"-start_epmd false -kernel inet_dist_use_interface {address}"
            ),
            RABBITMQ_CTL_ERL_ARGS=f"-start_epmd false {CTL_ERL_ARGS}",
        )
        return env

    def start(self, timeout: float = rmq.START_TIMEOUT_S) -> float:
        """epmd on both loopback addresses (the systemd socket's two ListenStreams)."""
        spec, user = self.spec, "rabbitmq" if os.geteuid() == 0 else None
        epmd = [shutil.which("epmd") or "epmd", "-port", str(spec.epmd_port)]
        self._epmd = Child(
            "epmd",
            [*epmd, "-address", f"127.0.0.1,{NODE_ADDRESS}"],
            self.log_dir / "epmd.log",
            env=self._env(),
            cwd=self.node_dir,
            user=user,
        )
        self._epmd.start()
        ports.wait_open(NODE_ADDRESS, spec.epmd_port, 10, "epmd", self._epmd.alive)
        self._server = Child(
            "rabbitmq",
            [str(rmq.find_tool("rabbitmq-server"))],
            self.console_log,
            env=self._env(),
            cwd=self.node_dir,
            user=user,
        )
        self._server.start()
        try:
            ports.wait_open(spec.host, spec.amqps_port, timeout, "RabbitMQ", self._server.alive)
        except (RuntimeError, TimeoutError) as err:
            tail = rmq._tail(self.console_log) or rmq._tail(self.log_file)
            self.kill()
            raise RuntimeError(f"{err}; last log lines:\n{tail}") from err
        return 0.0

    def ctl(self, *args: str, tool: str = "rabbitmqctl", timeout: float = 60.0) -> str:
        return super().ctl("-l", *args, tool=tool, timeout=timeout)


@pytest.fixture(scope="module")
def broker() -> Iterator[NixosLikeBroker]:
    reason = rmq.available()  # as conftest.require_rabbitmq: CI must not pass by skipping
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and RabbitMQ is missing: {reason}", pytrace=False)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="chatstack-it-loopback-"))
    base.chmod(0o711)
    contract = contract_mod.load()
    ca = pki.make_pki(base / "pki", hosts=("localhost", "127.0.0.1"))
    spec = rmq.BrokerSpec.on_free_ports(base / "broker", "loopback", ca, contract)
    node = NixosLikeBroker(spec, contract)
    node.plain_port = ports.free_port()
    node.provision()
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_no_plain_listener_although_listeners_tcp_1_is_set(broker: NixosLikeBroker) -> None:
    config = (broker.node_dir / "rabbitmq.conf").read_text()
    assert f"listeners.tcp.1=127.0.0.1:{broker.plain_port}" in config
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.plain_port), timeout=5).close()
    # The TLS listener is up (the test would prove nothing if the broker had no listener).
    socket.create_connection((broker.host, broker.amqps_port), timeout=5).close()


def test_listeners_are_amqps_and_loopback_distribution_only(broker: NixosLikeBroker) -> None:
    listeners = [
        line
        for line in broker.ctl("listeners", tool="rabbitmq-diagnostics").splitlines()
        if line.startswith("Interface:")
    ]
    protocols = sorted(line.split("protocol: ")[1].split(",")[0] for line in listeners)
    assert protocols == ["amqp/ssl", "clustering"], listeners
    clustering = next(line for line in listeners if "protocol: clustering" in line)
    assert clustering.startswith(f"Interface: {NODE_ADDRESS}, "), clustering


def test_rabbitmqctl_reaches_the_node_from_a_loopback_cli_node(broker: NixosLikeBroker) -> None:
    users = broker.ctl("--silent", "list_users").split()
    assert {broker.user("gateway"), broker.user("history")} <= set(users)


def test_the_distribution_refuses_other_addresses(broker: NixosLikeBroker) -> None:
    port = int(
        subprocess.run(
            [shutil.which("epmd") or "epmd", "-port", str(broker.spec.epmd_port), "-names"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.split("name rabbit at port ")[1]
        .split()[0]
    )
    socket.create_connection((NODE_ADDRESS, port), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
