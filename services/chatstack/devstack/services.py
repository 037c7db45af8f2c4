"""Service processes run locally: chat-gateway and chat-history of the stack, and the
embedded ``chatstack serve`` the tests start — their TOML configs and their processes.

Configs follow docs/configuration.md: ports from the contract (gateway instance N on
``ports.gateway + N - 1``, history on ``ports.history``) unless the caller picks others
(tests use free ports), the ``[broker]`` table from the running broker (AMQPS, CA file,
password file: never a password value), ``xheaders`` on because nginx is in front.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chatstack.config import variable_key
from chatstack.devstack import ports, tomlout
from chatstack.devstack.contract import Contract
from chatstack.devstack.netns import Namespace
from chatstack.devstack.procs import Child
from chatstack.devstack.rabbitmq import Broker

log = logging.getLogger(__name__)

# The command line of each role (console script first). The stack runs the first two.
COMMANDS = {
    "gateway": ["chat-gateway"],
    "history": ["chat-history"],
    "serve": ["chatstack", "serve"],
}
STACK_ROLES = ("gateway", "history")
READY_TIMEOUT_S = 30.0


def script(name: str) -> str:
    """A console script: the one installed next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make venv` (it installs the services)")
    return found


def command(role: str) -> list[str]:
    """The command line of ``role``, its console script resolved."""
    first, *rest = COMMANDS[role]
    return [script(first), *rest]


def display_name(role: str) -> str:
    return " ".join(COMMANDS[role])


def render_config(
    contract: Contract,
    role: str,
    *,
    instance: str,
    port: int,
    broker: Broker,
    allowed_origins: list[str] | None = None,
    database: Path | None = None,
    host: str = ports.LOOPBACK,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The config document of one service process (a dict; ``tomlout.dumps`` writes it)."""
    if role not in STACK_ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(STACK_ROLES)}")
    document: dict[str, Any] = {
        "instance": instance,
        "http": {"host": host, "port": port, "xheaders": True},
        "broker": broker.broker_config(role),
        "log": {"level": "INFO"},
    }
    if role == "gateway":
        # Explicit, like production: the nginx origin(s) browsers use for this stack.
        document["gateway"] = {"allowed_origins": list(allowed_origins or [])}
    if role == "history":
        if database is None:
            raise ValueError("history needs a database path")
        document["history"] = {"database": str(database)}
    for table, values in (extra or {}).items():
        document.setdefault(table, {}).update(values)
    return document


def render_embedded_config(
    *,
    instance: str,
    port: int,
    database: Path,
    host: str = ports.LOOPBACK,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The config document of a ``chatstack serve`` process (in-memory broker)."""
    document: dict[str, Any] = {
        "instance": instance,
        "http": {"host": host, "port": port},
        "history": {"database": str(database)},
    }
    for table, values in (extra or {}).items():
        document.setdefault(table, {}).update(values)
    return document


def config_keys(document: Mapping[str, Any]) -> set[str]:
    """The dotted keys a config document sets (``http.port``, ``broker.host``, ...)."""
    keys: set[str] = set()
    for name, value in document.items():
        if isinstance(value, Mapping):
            keys.update(f"{name}.{inner}" for inner in value)
        else:
            keys.add(name)
    return keys


def environment_overrides(
    environ: Mapping[str, str], owned: set[str]
) -> tuple[dict[str, str], list[str]]:
    """The ``CHATSTACK_*`` variables of ``environ`` the stack passes on to its services, and
    the names it ignores because they name no config key (test switches such as
    ``CHATSTACK_KEEP_STACK_DIR``).

    A variable for a key in ``owned`` (what the stack itself writes: ports, broker, origins,
    database) is refused: the stack's wiring must win, and silently ignoring it would hide
    why a setting has no effect.
    """
    passed: dict[str, str] = {}
    ignored: list[str] = []
    for name, value in sorted(environ.items()):
        if not name.startswith("CHATSTACK_"):
            continue
        key = variable_key(name)
        if key is None:
            ignored.append(name)
        elif key in owned:
            raise ValueError(
                f"{name}: the local stack sets {key} itself (docs/local-stack.md); unset it"
            )
        else:
            passed[name] = value
    return passed, ignored


class Service:
    """One service process (a role of ``COMMANDS``) with its config, log and health checks.

    ``overrides`` are ``CHATSTACK_*`` variables for its environment (on top of the config
    file, docs/configuration.md); every other ``CHATSTACK_*`` variable of the caller is
    stripped, so a stray one cannot rewire the stack.
    """

    def __init__(
        self,
        role: str,
        instance: str,
        port: int,
        workdir: Path,
        document: dict[str, Any],
        overrides: Mapping[str, str] | None = None,
        netns: Namespace | None = None,
    ):
        self.netns = netns  # run inside this network namespace (partition tests)
        self.role = role
        self.instance = instance
        self.host = str(document["http"]["host"])
        self.port = port
        self.workdir = workdir
        self.config_file = workdir / f"{instance}.toml"
        self.log_file = workdir / f"{instance}.log"
        self.document = document
        self.overrides = dict(overrides or {})
        self._child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(tomlout.dumps(self.document))

    def start(self) -> None:
        """Start the process (does not wait: see ``wait_healthy`` / ``wait_ready``)."""
        ports.ensure_free(self.host, self.port, f"{display_name(self.role)} {self.instance}")
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
        env.update(self.overrides)
        env["PYTHONUNBUFFERED"] = "1"
        argv = [*command(self.role), "--config", str(self.config_file)]
        self._child = Child(
            f"{display_name(self.role)} {self.instance}",
            argv if self.netns is None else self.netns.command(argv),
            self.log_file,
            env=env,
            cwd=self.workdir,
        )
        self._child.start()

    def running(self) -> bool:
        return self._child is not None and self._child.alive()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM: the service drains (gateways close sockets with 1012) and exits."""
        if self._child is not None:
            self._child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing drained."""
        if self._child is not None:
            self._child.kill()

    def status(self, route: str) -> tuple[int, dict[str, Any] | None]:
        """(HTTP status, JSON body) of ``route`` on this process; (0, None) if unreachable."""
        try:
            with urllib.request.urlopen(self.url + route, timeout=2) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read() or b"null")
            except ValueError:
                body = None
            return err.code, body
        except (OSError, ValueError):
            return 0, None

    def wait_status(self, route: str, want: int, timeout: float = READY_TIMEOUT_S) -> float:
        """Wait until ``route`` answers ``want``; seconds waited. Fails fast if the process died."""
        began = time.monotonic()
        deadline = began + timeout
        last: tuple[int, Any] = (0, None)
        while time.monotonic() < deadline:
            last = self.status(route)
            if last[0] == want:
                return time.monotonic() - began
            if self._child is not None and not self._child.alive():
                raise RuntimeError(
                    f"{display_name(self.role)} {self.instance} exited; see {self.log_file}:\n"
                    + _tail(self.log_file)
                )
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.url}{route} did not answer {want} within {timeout:.0f} s (last: {last});"
            f" see {self.log_file}"
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
