"""chat-probe's command line: arguments, output format, exit codes."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatstack import contract
from chatstack.probe.cli import EXIT_FAILED, EXIT_USAGE, parse_args
from chatstack.probe.flows import FLOWS
from chatstack.probe.flows.abuse import _checks
from chatstack.probe.flows.origin import other_port_origin
from chatstack.probe.report import Reporter
from chatstack.probe.target import Target, parse_base_url, unique_room

PROBE = Path(sys.executable).with_name("chat-probe")


def test_flows_are_the_documented_ones() -> None:
    assert list(FLOWS) == [
        "chat", "cross-instance", "members", "recovery", "origin", "cors", "abuse",
    ]  # fmt: skip


def test_abuse_covers_every_code_a_client_can_provoke() -> None:
    provokable = set(contract.error_codes()) - {"unavailable"}
    assert {code for code, _ in _checks()} == provokable


@pytest.mark.parametrize("flow", [*FLOWS, "all"])
def test_every_flow_parses(flow: str) -> None:
    args, target = parse_args([flow, "--url", "http://127.0.0.1:8088/", "--timeout", "3"])
    assert args.flow == flow
    assert target == Target("http://127.0.0.1:8088", "http://127.0.0.1:8088", 3.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["nope", "--url", "http://x"],
        ["chat"],
        ["chat", "--url", "ftp://x"],
        ["chat", "--url", "http://x/app"],
        ["chat", "--url", "http://x?y=1"],
        ["chat", "--url", "http://x", "--timeout", "0"],
        ["chat", "--url", "http://x", "--timeout", "soon"],
        ["chat", "--url", "http://x", "--connections", "-1"],
        ["chat", "--url", "http://x", "--origin", "evil"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == EXIT_USAGE
    assert "chat-probe" in capsys.readouterr().err


def test_origin_override() -> None:
    _, target = parse_args(["origin", "--url", "http://lb", "--origin", "https://chat.example.com"])
    assert target.origin == "https://chat.example.com"
    assert target.base_url == "http://lb"


def test_target_urls() -> None:
    plain = Target(parse_base_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080", 1)
    tls = Target(parse_base_url("https://chat.example.com"), "https://chat.example.com", 1)
    assert plain.ws_url == "ws://127.0.0.1:8080" + contract.route("websocket")
    assert tls.ws_url == "wss://chat.example.com" + contract.route("websocket")
    assert plain.messages_url("lobby", {"after": "01J", "limit": 5}) == (
        "http://127.0.0.1:8080/api/rooms/lobby/messages?after=01J&limit=5"
    )


def test_unique_rooms_match_the_room_pattern() -> None:
    import re

    pattern = re.compile(contract.section("protocol")["room_pattern"])
    rooms = {unique_room(flow) for flow in FLOWS for _ in range(5)}
    assert len(rooms) == 5 * len(FLOWS)
    # abuse derives rooms from the base name (too_many_rooms, not_joined): leave headroom.
    assert all(pattern.fullmatch(room + "-elsewhere") for room in rooms)


@pytest.mark.parametrize(
    ("origin", "other"),
    [
        ("http://127.0.0.1:8088", "http://127.0.0.1:8089"),
        ("https://chat.example.com", "https://chat.example.com:444"),
        ("http://[::1]:65535", "http://[::1]:65534"),
    ],
)
def test_other_port_origin(origin: str, other: str) -> None:
    assert other_port_origin(origin) == other


def test_reporter_lines() -> None:
    out = io.StringIO()
    reporter = Reporter(out)
    reporter.step("chat", "two clients connected")
    reporter.failed("chat", "first line\n  second   line")
    reporter.passed("cors")
    assert out.getvalue().splitlines() == [
        "chat: ok two clients connected",
        "chat: FAIL first line second line",
        "cors: PASS",
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_url_fails_every_flow_with_a_reason() -> None:
    port = closed_port()
    started = time.monotonic()
    result = subprocess.run(
        [str(PROBE), "all", "--url", f"http://127.0.0.1:{port}", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == EXIT_FAILED, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"chat-probe: all against http://127.0.0.1:{port}"
    for flow in FLOWS:
        [line] = [x for x in lines if x.startswith(f"{flow}: ")]
        assert line.startswith(f"{flow}: FAIL ") and "refused" in line.lower(), line
    assert lines[-1] == "all: FAIL " + ", ".join(FLOWS)
    assert result.stderr == ""
    assert time.monotonic() - started < 30
