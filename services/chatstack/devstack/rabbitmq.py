"""A RabbitMQ node from the system package, run as a plain process (no systemd, no init script).

Each node gets its own node name, ports, directories and Erlang cookie, and its own epmd
(on its own port, started and stopped with it), so a test broker, the local stack and a
system RabbitMQ never meet. Debian's ``/usr/sbin/rabbitmq-server`` is a wrapper that
``su``-s to the ``rabbitmq`` user and writes its own log files under ``/var/log``; we call
the real scripts in ``/usr/lib/rabbitmq/bin`` and drop to ``rabbitmq`` ourselves (as root),
so the pid we hold is the Erlang VM itself and every path is ours.

The node boots provisioned: its config imports the definitions rendered from the contract
(``definitions.py``), listens for AMQPS only (plaintext only when a port is asked for, which
tests may do), loads no plugin and has the contract's ``[rabbitmq_conf]`` settings (the
NixOS module writes the same).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chatstack.devstack import definitions, ports
from chatstack.devstack.contract import Contract
from chatstack.devstack.pki import Pki
from chatstack.devstack.procs import Child

log = logging.getLogger(__name__)

DEBIAN_BIN = Path("/usr/lib/rabbitmq/bin")
SERVICE_USER = "rabbitmq"
INSTALL_HINT = "apt-get install -y rabbitmq-server"
START_TIMEOUT_S = 90.0  # ~10 s on an idle machine; CI runners under load are slower


def find_tool(name: str) -> Path:
    """The real RabbitMQ script (not Debian's su wrapper), or a clear error naming the package."""
    debian = DEBIAN_BIN / name
    if debian.exists():
        return debian
    found = shutil.which(name)
    if found is None or found.startswith("/usr/sbin/"):
        raise RuntimeError(f"RabbitMQ's {name} not found: install it with `{INSTALL_HINT}`")
    return Path(found)


def available() -> str | None:
    """None when a broker can be started here, else why not (for a skip or a failure)."""
    try:
        find_tool("rabbitmq-server")
        find_tool("rabbitmqctl")
    except RuntimeError as err:
        return str(err)
    if shutil.which("epmd") is None:
        return f"epmd (Erlang) not found: install it with `{INSTALL_HINT}`"
    return None


@dataclass
class BrokerSpec:
    """Where and how one node runs. ``amqp_port`` None = no plaintext listener at all."""

    base_dir: Path
    node_name: str
    amqps_port: int
    dist_port: int
    epmd_port: int
    pki: Pki
    vhost: str
    amqp_port: int | None = None
    host: str = ports.LOOPBACK
    # More addresses for the AMQPS listener (the host ends of the partition tests' veths).
    extra_hosts: tuple[str, ...] = ()

    @classmethod
    def on_free_ports(
        cls, base_dir: Path, node_name: str, pki: Pki, contract: Contract, *,
        amqps_port: int | None = None, amqp: bool = False, extra_hosts: tuple[str, ...] = (),
    ) -> BrokerSpec:  # fmt: skip
        """A spec whose ports are all free right now (tests, parallel stacks)."""
        return cls(
            base_dir=base_dir,
            node_name=node_name,
            amqps_port=amqps_port if amqps_port is not None else ports.free_port(),
            dist_port=ports.free_port(),
            epmd_port=ports.free_port(),
            pki=pki,
            vhost=contract["amqp"]["vhost"],
            amqp_port=ports.free_port() if amqp else None,
            extra_hosts=extra_hosts,
        )


class Broker:
    """One RabbitMQ node: ``provision()``, then ``start``/``stop``/``kill``/``restart``."""

    def __init__(self, spec: BrokerSpec, contract: Contract) -> None:
        self.spec = spec
        self.contract = contract
        base = spec.base_dir
        self.secrets_dir = base / "secrets"  # passwords, read by the services (owned by us)
        self.node_dir = base / "node"  # everything the rabbitmq user owns
        self.log_dir = self.node_dir / "log"
        self.log_file = self.log_dir / "rabbit.log"
        self.console_log = self.log_dir / "console.log"
        self.password_files: dict[str, Path] = {}
        self._user = _service_user()
        self._epmd: Child | None = None
        self._server: Child | None = None

    # --- addresses -----------------------------------------------------------------

    @property
    def node(self) -> str:
        return f"{self.spec.node_name}@localhost"

    @property
    def host(self) -> str:
        return self.spec.host

    @property
    def amqps_port(self) -> int:
        return self.spec.amqps_port

    @property
    def amqp_port(self) -> int | None:
        """The plaintext port, None when (as in the stack) there is no plaintext listener."""
        return self.spec.amqp_port

    @property
    def vhost(self) -> str:
        return self.spec.vhost

    @property
    def ca_file(self) -> Path:
        return self.spec.pki.ca_file

    def broker_config(self, role: str, *, tls: bool = True) -> dict[str, object]:
        """The ``[broker]`` table of a service config (docs/configuration.md) for ``role``.

        Absolute paths, so the config works from any directory; ``tls=False`` points at the
        plaintext port (only when the broker was started with one).
        """
        if not tls and self.amqp_port is None:
            raise ValueError("this broker has no plaintext listener (start it with amqp=True)")
        table: dict[str, object] = {
            "kind": "rabbitmq",
            "host": self.host,
            "port": self.amqps_port if tls else self.amqp_port,
            "vhost": self.vhost,
            "user": self.user(role),
            "password_file": str(self.password_file(role)),
            "tls": tls,
        }
        if tls:
            table["ca_file"] = str(self.ca_file)
        return table

    def config(self, role: str, *, tls: bool = True) -> dict[str, object]:
        """A whole service config dict with just the ``[broker]`` table; merge the rest in."""
        return {"broker": self.broker_config(role, tls=tls)}

    def user(self, role: str) -> str:
        return definitions.user(self.contract, role)["name"]

    def password_file(self, role: str) -> Path:
        if role not in self.password_files:
            raise KeyError(
                f"no password for role {role!r} (roles: {', '.join(self.password_files)})"
            )
        return self.password_files[role]

    # --- provisioning ----------------------------------------------------------------

    def provision(self) -> None:
        """Write config, definitions, TLS copies, cookie and passwords (idempotent)."""
        spec = self.spec
        _check_reachable(spec.base_dir, self._user)
        self.password_files = definitions.ensure_passwords(self.secrets_dir, self.contract)
        node = self.node_dir
        for sub in ("tls", "mnesia", "log"):
            (node / sub).mkdir(parents=True, exist_ok=True)
        # The node reads its own copies, so the PKI directory may stay private to us.
        tls = node / "tls"
        for src, name in ((spec.pki.ca_file, "ca.pem"), (spec.pki.server_cert, "server.pem"),
                          (spec.pki.server_key, "server.key")):  # fmt: skip
            shutil.copyfile(src, tls / name)
            (tls / name).chmod(0o600)
        definitions.write(
            node / "definitions.json", definitions.render(self.contract, self.password_files)
        )
        (node / "rabbitmq.conf").write_text(self._config(tls, node / "definitions.json"))
        (node / "enabled_plugins").write_text("[].\n")  # no plugin: faster boot, less surface
        (node / "rabbitmq-env.conf").write_text(
            "# empty: /etc/rabbitmq/rabbitmq-env.conf must not apply\n"
        )
        cookie = node / ".erlang.cookie"
        if not cookie.exists():
            # The cookie is the key to the node (full control via the Erlang distribution).
            definitions.write_secret(cookie, os.urandom(24).hex())
            cookie.chmod(0o400)
        if self._user is not None:
            _chown_tree(node, self._user)

    def _config(self, tls: Path, definitions_file: Path) -> str:
        spec = self.spec
        lines = [
            "# Generated by chatstack.devstack.rabbitmq from contract.toml; do not edit.",
            "listeners.tcp = none" if spec.amqp_port is None
            else f"listeners.tcp.1 = {spec.host}:{spec.amqp_port}",
            f"listeners.ssl.1 = {spec.host}:{spec.amqps_port}",
            *(
                f"listeners.ssl.{n} = {host}:{spec.amqps_port}"
                for n, host in enumerate(spec.extra_hosts, start=2)
            ),
            f"ssl_options.cacertfile = {tls / 'ca.pem'}",
            f"ssl_options.certfile = {tls / 'server.pem'}",
            f"ssl_options.keyfile = {tls / 'server.key'}",
            # Client certificates are verified when presented, not required (passwords are).
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = false",
            "ssl_options.versions.1 = tlsv1.3",
            "ssl_options.versions.2 = tlsv1.2",
            # Provisioned at boot: with definitions to import, no default guest user is made.
            "definitions.import_backend = local_filesystem",
            f"definitions.local.path = {definitions_file}",
            "log.console = false",
            "log.file.level = info",
            # The node's own settings, the same the NixOS module writes (contract.toml).
            *rabbitmq_conf_lines(self.contract),
        ]  # fmt: skip
        return "\n".join(lines) + "\n"

    def _env(self) -> dict[str, str]:
        spec, node = self.spec, self.node_dir
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(node),  # where erl and the CLI look for .erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": str(node / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONFIG_FILE": str(node / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_LOGS": str(self.log_file),
            "RABBITMQ_PID_FILE": str(node / "rabbitmq.pid"),
            "RABBITMQ_DIST_PORT": str(spec.dist_port),
            "ERL_EPMD_PORT": str(spec.epmd_port),
            "ERL_EPMD_ADDRESS": spec.host,
            # Our own epmd runs already; no stray epmd daemon, distribution on loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
            ),
            "RABBITMQ_CTL_ERL_ARGS": "-start_epmd false",
        }
        return env

    # --- process control -----------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> float:
        """Start epmd and the node, wait until AMQPS accepts connections; returns seconds taken."""
        if not self.password_files:
            self.provision()
        spec = self.spec
        began = time.monotonic()
        for port, what in ((spec.amqps_port, "AMQPS"), (spec.dist_port, "Erlang distribution"),
                           (spec.epmd_port, "epmd"), (spec.amqp_port, "AMQP")):  # fmt: skip
            if port is not None:
                ports.ensure_free(spec.host, port, f"RabbitMQ {self.node} {what}")
        user = self._user.pw_name if self._user is not None else None
        self._epmd = Child(
            f"epmd ({self.node})",
            [shutil.which("epmd") or "epmd", "-port", str(spec.epmd_port), "-address", spec.host],
            self.log_dir / "epmd.log", env=self._env(), cwd=self.node_dir, user=user,
        )  # fmt: skip
        self._epmd.start()
        ports.wait_open(spec.host, spec.epmd_port, 10, "epmd", self._epmd.alive)
        self._server = Child(
            f"rabbitmq {self.node}",
            [str(find_tool("rabbitmq-server"))],
            self.console_log, env=self._env(), cwd=self.node_dir, user=user,
        )  # fmt: skip
        self._server.start()
        try:
            ports.wait_open(
                spec.host, spec.amqps_port, timeout, f"RabbitMQ {self.node}", self._server.alive
            )
        except (RuntimeError, TimeoutError) as err:
            tail = _tail(self.console_log) or _tail(self.log_file)
            self.kill()
            raise RuntimeError(f"{err}; last log lines:\n{tail}") from err
        took = time.monotonic() - began
        log.info(
            "RabbitMQ %s ready on %s:%s (AMQPS) in %.1f s",
            self.node,
            spec.host,
            spec.amqps_port,
            took,
        )
        return took

    def ensure_running(self) -> None:
        """Start the node if a test (or a crash) left it stopped."""
        if not self.running():
            self.stop()  # reap what is left (epmd) before starting again
            self.start()

    def running(self) -> bool:
        return self._server is not None and self._server.alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful: the VM handles SIGTERM as init:stop(), RabbitMQ closes its queues cleanly."""
        if self._server is not None:
            self._server.stop(timeout)
        if self._epmd is not None:
            self._epmd.stop(5)

    def kill(self) -> None:
        """SIGKILL the node (a crash); epmd goes too, so nothing is left behind."""
        if self._server is not None:
            self._server.kill()
        if self._epmd is not None:
            self._epmd.stop(5)

    def restart(self, timeout: float = START_TIMEOUT_S) -> float:
        self.stop()
        return self.start(timeout)

    @property
    def pids(self) -> dict[str, int | None]:
        return {
            "rabbitmq": self._server.pid if self._server else None,
            "epmd": self._epmd.pid if self._epmd else None,
        }

    def ctl(self, *args: str, tool: str = "rabbitmqctl", timeout: float = 60.0) -> str:
        """Run ``<tool> -n <node> ARGS`` (rabbitmqctl, rabbitmq-diagnostics…) against this node."""
        user = self._user.pw_name if self._user is not None else None
        result = subprocess.run(
            [str(find_tool(tool)), "-n", self.node, *args],
            env=self._env(), cwd=self.node_dir, user=user, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout


def rabbitmq_conf_lines(contract: Contract) -> list[str]:
    """The contract's ``[rabbitmq_conf]`` as rabbitmq.conf lines (``key = value``)."""
    return [f"{key} = {value}" for key, value in contract["rabbitmq_conf"].items()]


def _service_user() -> pwd.struct_passwd | None:
    """As root, the node runs as ``rabbitmq`` (as the Debian package intends); else as us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError as err:
        raise RuntimeError(
            f"user {SERVICE_USER!r} missing: install it with `{INSTALL_HINT}`"
        ) from err


def unreachable_reason(base: Path) -> str | None:
    """Why the node's user could not enter ``base`` (pytest's tmp and /root are 0700), or None."""
    user = _service_user()
    if user is None:
        return None
    for parent in base.resolve().parents:
        if not parent.exists():
            continue  # we will create it with the usual 0755
        st = parent.stat()
        if not st.st_mode & 0o001 and st.st_uid != user.pw_uid:
            return (
                f"RabbitMQ runs as {user.pw_name!r} and cannot enter {parent}"
                f" (mode {oct(st.st_mode & 0o777)}): put the broker directory {base}"
                " somewhere it can reach, e.g. under /tmp"
            )
    return None


def _check_reachable(base: Path, user: pwd.struct_passwd | None) -> None:
    base.mkdir(parents=True, exist_ok=True)
    if user is None:
        return
    base.chmod(0o711)  # others may traverse, not list: secrets/ stays ours (0700 below)
    reason = unreachable_reason(base)
    if reason is not None:
        raise RuntimeError(reason)


def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    os.chown(root, user.pw_uid, user.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
