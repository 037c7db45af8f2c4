"""chatstack serve as a real process under connection attacks (issue 9, items 2 and 11):
slowloris heads, a connection cap answered 503, running out of file descriptors, and a
SIGTERM drain that waits for the clients' close replies."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from rawws import RawWebSocket

from chatstack.devstack.ports import free_port
from chatstack.devstack.services import command


@contextmanager
def serve(
    tmp_path: Path, *, nofile: int | None = None, **settings: str
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """``chatstack serve`` on a free port, its JSON log in a file; settings as env keys."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
    env["CHATSTACK_HISTORY__DATABASE"] = str(tmp_path / "h.sqlite3")
    env["CHATSTACK_HTTP__SHUTDOWN_TIMEOUT_S"] = "5"
    env |= {f"CHATSTACK_{key.upper()}": value for key, value in settings.items()}
    log = tmp_path / f"serve-{port}.log"

    def limit_descriptors() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command("serve"), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=limit_descriptors,
        )
    try:
        wait_status(port, 200, proc)
        yield port, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def http_status(port: int, path: str = "/healthz", timeout: float = 5.0) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    return int(head.split(" ", 2)[1]), head


def wait_status(port: int, want: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"chatstack serve exited with {proc.returncode}"
        try:
            last = http_status(port, timeout=2)[0]
            if last == want:
                return
        except (OSError, ValueError, IndexError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"no {want} from /healthz within {timeout}s (last: {last})")


def log_events(log: Path) -> list[str]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        with suppress(ValueError):
            events.append(json.loads(line).get("event", ""))
    return events


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_slowloris_heads_are_cut_off_at_the_header_timeout(tmp_path: Path) -> None:
    with serve(tmp_path, http__header_timeout_s="1") as (port, _proc, _log):
        silent = socket.create_connection(("127.0.0.1", port))
        trickling = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for sock in trickling:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # One header line every 0.2 s: each read is quick, the head never completes.
        deadline = time.monotonic() + 15
        open_ = list(trickling)
        while open_ and time.monotonic() < deadline:
            for sock in list(open_):
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    open_.remove(sock)
            time.sleep(0.2)
        assert not open_, f"{len(open_)} slowloris connections still open after 15 s"
        assert closed_by_server(silent, 10), "a connection that sends nothing is held"
        for sock in [silent, *trickling]:
            sock.close()
        assert http_status(port)[0] == 200


def test_a_connection_over_the_cap_is_answered_503_and_counted(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as statsd:
        statsd.bind(("127.0.0.1", 0))
        statsd.settimeout(5)
        with serve(
            tmp_path,
            http__max_connections="20",
            statsd__host="127.0.0.1",
            statsd__port=str(statsd.getsockname()[1]),
        ) as (port, _proc, log):
            held = [RawWebSocket.connect("127.0.0.1", port) for _ in range(20)]
            status, head = http_status(port)
            assert status == 503, head
            assert "Connection: close" in head and "Retry-After" in head
            assert "Server:" not in head
            counted = b""
            while b"http.refused.capacity" not in counted:
                counted += statsd.recv(4096) + b"\n"
            assert b"chatstack.http.refused.capacity:1|c" in counted
            held.pop().close()
            wait_status(port, 200, _proc)
            for ws in held:
                ws.close()
            assert log_events(log).count("http.over_capacity") == 1


def test_out_of_descriptors_pauses_accepting_instead_of_spinning(tmp_path: Path) -> None:
    """At the fd limit tornado's accept handler raised on every loop iteration (a busy loop
    and a traceback each time). Now: a warning per pause, and serving again afterwards."""
    with serve(tmp_path, nofile=64) as (port, proc, log):
        clients = []
        for _ in range(120):
            with suppress(OSError):
                clients.append(socket.create_connection(("127.0.0.1", port), 2))
        time.sleep(3)
        assert proc.poll() is None
        text = log.read_text(errors="replace")
        events = log_events(log)
        assert "config.fd_limit" in events  # said once at start: the cap cannot be reached
        assert 1 <= events.count("http.accept_paused") <= 3 / 0.5 + 3, events
        assert "Traceback" not in text
        assert len(text.splitlines()) < 50
        for sock in clients:
            sock.close()
        wait_status(port, 200, proc)


def test_sigterm_waits_for_the_close_handshake(tmp_path: Path) -> None:
    """The gateway sends 1012 and stays until the client's close reply arrives (a browser
    whose reply meets a closed socket reports 1006, not 1012)."""
    with serve(tmp_path) as (port, proc, log):
        ws = RawWebSocket.connect("127.0.0.1", port)
        ws.recv_json()
        proc.send_signal(signal.SIGTERM)
        code, _, _ = ws.read_until_close()
        assert code == 1012
        time.sleep(0.5)  # a slow client: the server must still be there
        assert proc.poll() is None, "exited before the client answered the close"
        ws.send_close(1012)
        assert closed_by_server(ws.sock, 10)
        ws.close()
        assert proc.wait(10) == 0
        assert "shutdown.unclosed" not in log_events(log)


def test_behind_nginx_connections_are_counted_per_real_client_address(tmp_path: Path) -> None:
    """With http.xheaders the gateway counts nginx's X-Real-IP, not nginx's own address."""
    with serve(tmp_path, http__xheaders="true", gateway__max_connections_per_address="2") as (
        port,
        _proc,
        _log,
    ):
        first = [
            RawWebSocket.connect("127.0.0.1", port, headers={"X-Real-IP": "192.0.2.7"})
            for _ in range(2)
        ]
        try:
            RawWebSocket.connect("127.0.0.1", port, headers={"X-Real-IP": "192.0.2.7"})
            raise AssertionError("a third websocket for 192.0.2.7 was accepted")
        except ConnectionRefusedError as exc:
            assert " 429 " in str(exc), exc
        other = RawWebSocket.connect("127.0.0.1", port, headers={"X-Real-IP": "192.0.2.8"})
        for ws in [*first, other]:
            ws.close()
