"""Where the browser tests open the client, and how each site drops a page's websocket.

- ``EmbeddedSite``: one ``chatstack serve`` process. Dropping means stopping it (SIGTERM:
  clients get 1012) and starting it again on the same port and folder (history survives
  in SQLite).
- ``StackSite``: the local production-like stack behind nginx (tests/conftest.py
  ``stack``). Dropping means kill -9 of the gateway that serves the page; nginx sends the
  reconnect to the other gateway. The ``stack`` fixture restarts it after the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, alive: Any = None, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            raise AssertionError(f"server for {url} exited while starting")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}/readyz not 200 within {timeout}s")
        time.sleep(0.1)


class EmbeddedSite:
    kind = "embedded"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "chatstack-serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "chatstack"),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.workdir,
                env=dict(os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc
        wait_ready(self.url, alive=lambda: proc.poll() is None)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

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
