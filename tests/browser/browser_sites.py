"""Where the browser tests open the client, and how each site drops a page's websocket.

- ``EmbeddedSite``: one ``chatstack serve`` process. Dropping means stopping it (SIGTERM:
  clients get 1012) and starting it again on the same port and folder (history survives
  in SQLite).
- ``StackSite``: the local production-like stack behind nginx (tests/conftest.py
  ``stack``). Dropping means kill -9 of the gateway that serves the page; nginx sends the
  reconnect to the other gateway. The ``stack`` fixture restarts it after the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatstack import contract
from chatstack.devstack.ports import free_port
from chatstack.devstack.services import Service, render_embedded_config


class EmbeddedSite:
    kind = "embedded"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        document = render_embedded_config(
            instance="browser-serve",
            port=self.port,
            database=workdir / "history.sqlite3",
        )
        self.server = Service("serve", "browser-serve", self.port, workdir, document)
        self.log_path = self.server.log_file

    def start(self) -> None:
        self.server.start()
        self.server.wait_status(contract.route("readyz"), 200, timeout=15)

    def stop(self) -> None:
        self.server.stop()

    def drop(self, instance: str) -> None:
        """Every socket of the one instance goes: stop the server (clients get 1012)."""
        self.stop()

    def restore(self) -> None:
        self.start()

    def describe(self) -> str:
        return f"chatstack serve at {self.url} (log {self.log_path})"


class StackSite:
    kind = "stack"

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.url: str = stack.url

    def drop(self, instance: str) -> None:
        """kill -9 the gateway named ``instance``: its sockets die, nginx fails over."""
        for n, gateway in enumerate(self.stack.gateways, start=1):
            if gateway.instance == instance:
                self.stack.kill_gateway(n)
                return
        names = [g.instance for g in self.stack.gateways]
        raise AssertionError(
            f"page is served by {instance!r}, not one of the gateways {names}"
        )

    def restore(self) -> None:
        """Nothing to do: the other gateway serves meanwhile, which is the point. The
        ``stack`` fixture starts the killed one again after the test."""

    def describe(self) -> str:
        rows = "; ".join(
            f"{name} {address} log {log}"
            for name, address, log in self.stack.components()
        )
        return f"stack at {self.url} ({rows})"
