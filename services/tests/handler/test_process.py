"""chatstack serve as a real process: where to browse, JSON logs, SIGTERM drain, bind errors."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from support import Client, run

from chatstack.devstack.ports import free_port
from chatstack.devstack.services import command


def start_serve(tmp_path: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")} | extra
    env["CHATSTACK_HISTORY__DATABASE"] = str(tmp_path / "h.sqlite3")
    env["CHATSTACK_HTTP__SHUTDOWN_TIMEOUT_S"] = "3"
    return subprocess.Popen(
        [*command("serve"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_listening(port: int, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("chatstack serve did not listen")


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_sigterm_drains_with_1012_and_exits_in_bounded_time(
    tmp_path: Path, event_loop: str
) -> None:
    port = free_port()
    proc = start_serve(tmp_path, port, CHATSTACK_PROCESS__EVENT_LOOP=event_loop)
    try:
        wait_listening(port, proc)

        async def scenario() -> int | None:
            client = await Client.connect(f"ws://127.0.0.1:{port}/ws")
            await client.join("lobby", "ada")
            await client.say("lobby", "before shutdown", "c1")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await client.wait_closed()
            assert time.monotonic() - started < 3
            return code

        assert run(scenario()) == 1012
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    first, *log_lines = out.splitlines()
    assert first.startswith(f"chatstack: open http://127.0.0.1:{port}/")
    records = [json.loads(line) for line in log_lines]
    for record in records:
        assert {"time", "level", "logger", "message", "event", "instance"} <= set(record)
    events = [r["event"] for r in records]
    assert "listening" in events
    assert events[-1] == "stopped"
    assert [r["loop"] for r in records if r["event"] == "process.event_loop"] == [event_loop]
    assert "shutting down" in [r["message"] for r in records]


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_serve(tmp_path, port)
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_tells_systemd_when_ready_and_when_stopping(tmp_path: Path) -> None:
    """The sd_notify protocol over a real datagram socket, as systemd's Type=notify uses it."""
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(address)
        systemd.settimeout(15)
        port = free_port()
        proc = start_serve(tmp_path, port, NOTIFY_SOCKET=address)
        try:
            try:
                ready = systemd.recv(4096).decode()
            except TimeoutError:
                proc.kill()
                raise AssertionError(f"no READY=1; the process said {proc.communicate()}") from None
            assert ready.splitlines()[0] == "READY=1"
            # READY comes once the port accepts connections.
            socket.create_connection(("127.0.0.1", port), 2).close()
            proc.send_signal(signal.SIGTERM)
            assert systemd.recv(4096).decode().startswith("STOPPING=1")
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
