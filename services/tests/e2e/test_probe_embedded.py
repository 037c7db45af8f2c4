"""chat-probe against a real `chatstack serve` process (the embedded default).

Every flow that makes sense with one process passes; cross-instance and members fail there
when run by name, and `all` skips them, with their clear reason (one gateway instance
only); and flows must fail when the server is configured to do what they check against.
Nothing is mocked: real process, real sockets.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatstack import contract
from chatstack.devstack.ports import free_port
from chatstack.devstack.services import Service, render_embedded_config, script

PROBE_FLOWS = ["chat", "recovery", "origin", "cors", "abuse"]
TIMEOUT_S = "5"


@contextlib.contextmanager
def chatstack_serve(tmp_path: Path, **extra: dict[str, Any]) -> Iterator[str]:
    """A `chatstack serve` process on a free port with ``extra`` config tables; yields its
    base URL once /readyz answers 200, stops it (SIGTERM) after."""
    port = free_port()
    document = render_embedded_config(
        instance=f"e2e-{port}", port=port, database=tmp_path / "history.sqlite3", extra=extra
    )
    server = Service("serve", f"e2e-{port}", port, tmp_path, document)
    server.start()
    try:
        server.wait_status(contract.route("readyz"), 200, timeout=15)
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chatstack_serve(tmp_path_factory.mktemp("serve")) as url:
        yield url


def probe(flow: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("chat-probe"), flow, "--url", url, "--timeout", TIMEOUT_S, *extra],
        capture_output=True,
        text=True,
        timeout=180,
    )


def check_passed(result: subprocess.CompletedProcess[str], flow: str) -> list[str]:
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1] == f"{flow}: PASS"
    steps = lines[1:-1]
    assert steps and all(line.startswith(f"{flow}: ok ") for line in steps), lines
    return lines


@pytest.mark.parametrize("flow", PROBE_FLOWS)
def test_flow_passes(served: str, flow: str) -> None:
    result = probe(flow, served)
    lines = check_passed(result, flow)
    assert lines[0] == f"chat-probe: {flow} against {served}"
    assert result.stderr == ""


def test_abuse_checks_every_provokable_code(served: str) -> None:
    lines = check_passed(probe("abuse", served), "abuse")
    checked = {line.split()[2].rstrip(":") for line in lines[1:-1]}
    assert set(contract.error_codes()) - {"unavailable"} <= checked
    assert "abuse: ok sustained abuse: connection closed with 1008" in lines


def test_cross_instance_fails_clearly_with_one_instance(served: str) -> None:
    result = probe("cross-instance", served, "--connections", "4")
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = [x for x in result.stdout.splitlines() if x.startswith("cross-instance:")]
    assert line.startswith("cross-instance: FAIL only one gateway instance (")
    assert line.endswith(
        f"answered 4 connections to ws{served[4:]}/ws; cross-instance delivery needs at least 2"
    )


def test_members_fails_clearly_with_one_instance(served: str) -> None:
    result = probe("members", served, "--connections", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stdout.splitlines()[-1]
    assert line.startswith("members: FAIL only one gateway instance ('e2e-"), line
    assert line.endswith(
        f"answered 4 connections to ws{served[4:]}/ws; member lists across gateways need at least 2"
    )


def test_all_skips_the_flows_across_gateways_on_one_instance(served: str) -> None:
    """`make run` is one process: `all` passes, saying which flows it could not check."""
    result = probe("all", served)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    for flow in PROBE_FLOWS:
        assert f"{flow}: PASS" in lines
    for flow in ("cross-instance", "members"):
        [line] = [x for x in lines if x.startswith(f"{flow}: ")]
        assert line.startswith(f"{flow}: SKIP only one gateway instance ("), line
    assert lines[-1] == f"all: PASS ({len(PROBE_FLOWS)} flows, skipped: cross-instance, members)"


def test_output_is_deterministic(served: str) -> None:
    """The VM tests grep and compare it: no timings, random rooms or ids in the lines."""
    first, second = probe("chat", served), probe("chat", served)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout


def test_limits_are_read_from_welcome(tmp_path: Path) -> None:
    """abuse provokes too_many_rooms, text_too_long and rate_limited from announced limits."""
    limits = {"max_rooms": 3, "max_text_bytes": 40, "burst": 4, "rate_per_s": 20.0}
    with chatstack_serve(tmp_path, limits=limits) as url:
        check_passed(probe("abuse", url), "abuse")


def test_origin_fails_when_a_foreign_origin_is_allowed(tmp_path: Path) -> None:
    with chatstack_serve(tmp_path, gateway={"allowed_origins": ["http://evil.example"]}) as url:
        result = probe("origin", url)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == (
        "origin: FAIL handshake with foreign Origin http://evil.example was accepted, "
        "expected HTTP 403"
    )


def test_abuse_fails_when_sustained_abuse_is_tolerated(tmp_path: Path) -> None:
    with chatstack_serve(tmp_path, limits={"max_errors": 1_000_000}) as url:
        result = probe("abuse", url)
    assert result.returncode == 1
    last = result.stdout.splitlines()[-1]
    assert last == (
        "abuse: FAIL sustained abuse: connection still open after 2000 invalid frames, "
        "expected close code 1008"
    )


def test_recovery_with_history_in_a_restarted_server(tmp_path: Path) -> None:
    """History survives a restart of the embedded server (SQLite in its working dir):
    a second server on the same folder answers the recovery flow too."""
    with chatstack_serve(tmp_path) as url:
        check_passed(probe("recovery", url), "recovery")
    with chatstack_serve(tmp_path) as url:
        check_passed(probe("recovery", url), "recovery")


def read_events(path: Path) -> list[dict[str, Any]]:
    """The complete lines written so far (none before the probe has opened the file)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def test_traffic_until_a_stop_file(served: str, tmp_path: Path) -> None:
    """traffic talks until the file appears, then checks history; its event log counts."""
    stop, events = tmp_path / "stop", tmp_path / "events.jsonl"
    command = [script("chat-probe"), "traffic", "--url", served, "--timeout", TIMEOUT_S]
    command += ["--until", str(stop), "--talkers", "3", "--events", str(events)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 60
        while sum(e.get("answer") == "ack" for e in read_events(events)) < 10:
            assert proc.poll() is None and time.monotonic() < deadline, "no 10 acks in 60 s"
            time.sleep(0.2)
        stop.touch()
        stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout
    lines = stdout.splitlines()
    assert lines[-1] == "traffic: PASS"
    assert lines[1] == "traffic: ok 3 talkers joined one room on 1 gateway instances"
    logged = read_events(events)
    [summary] = [e for e in logged if e["event"] == "summary"]
    says = [e for e in logged if e["event"] == "say"]
    assert summary["acked"] == sum(e["answer"] == "ack" for e in says) >= 10
    assert summary["stored"] == summary["acked"]
    assert {e["talker"] for e in logged if e["event"] == "connected"} == {"t1", "t2", "t3"}
    assert f"traffic: ok history holds each of the {summary['acked']} acked messages once" in stdout
