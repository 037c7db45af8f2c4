"""`chat-probe traffic` around a dead gateway and a broker restart: the flow the NixOS VM tests
vm-failover and vm-broker-restart run, on the local stack.

The probe runs as a subprocess (the exact command of the VM tests) with an event log; the test
breaks something while it talks, waits on the log for the evidence that the break was felt,
then stops it with its stop file. The flow itself checks that every acked message is in
history exactly once under its acked id and that every talker saw every other's; the test
counts what the events say about the break.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chatstack.devstack.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

Event = dict[str, Any]


def chat_probe() -> str:
    beside = Path(sys.executable).parent / "chat-probe"
    return str(beside) if beside.exists() else "chat-probe"


class Traffic:
    """`chat-probe traffic --until STOP --events EVENTS` running against the stack."""

    def __init__(self, url: str, workdir: Path, talkers: int) -> None:
        self.stop_file = workdir / "stop"
        self.events_file = workdir / "events.jsonl"
        self.proc = subprocess.Popen(
            [chat_probe(), "traffic", "--url", url, "--talkers", str(talkers)]
            + ["--until", str(self.stop_file), "--events", str(self.events_file)],
            stdout=subprocess.PIPE,
            text=True,
        )

    def events(self) -> list[Event]:
        text = self.events_file.read_text() if self.events_file.exists() else ""
        return [
            json.loads(line)
            for line in text.splitlines(keepends=True)
            if line.endswith("\n")
        ]

    def wait_until(
        self, what: str, holds: Callable[[list[Event]], bool], timeout: float = 60
    ) -> None:
        deadline = time.time() + timeout
        while not holds(self.events()):
            assert self.proc.poll() is None, (
                f"chat-probe traffic exited while waiting for {what}"
            )
            assert time.time() < deadline, f"no {what} within {timeout:.0f} s"
            time.sleep(0.2)

    def finish(self) -> tuple[str, list[Event]]:
        self.stop_file.touch()
        stdout, _ = self.proc.communicate(timeout=240)
        assert self.proc.returncode == 0, stdout
        assert stdout.splitlines()[-1] == "traffic: PASS", stdout
        return stdout, self.events()


@pytest.fixture
def traffic_run(stack: Stack, tmp_path: Path) -> Iterator[Callable[[int], Traffic]]:
    runs: list[Traffic] = []

    def start(talkers: int) -> Traffic:
        runs.append(Traffic(stack.url, tmp_path, talkers))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def acks(
    events: list[Event], after: float = 0.0, talkers: set[str] | None = None
) -> int:
    return sum(
        1
        for e in events
        if e["event"] == "say"
        and e["answer"] == "ack"
        and e["sent_at"] > after
        and (talkers is None or e["talker"] in talkers)
    )


def first_instances(events: list[Event]) -> dict[str, str]:
    first: dict[str, str] = {}
    for e in events:
        if e["event"] == "connected":
            first.setdefault(e["talker"], e["instance"])
    return first


def test_traffic_rides_out_a_killed_gateway(
    stack: Stack, traffic_run: Callable[[int], Traffic]
) -> None:
    run = traffic_run(4)
    run.wait_until(
        "4 talkers and 10 acks",
        lambda ev: len(first_instances(ev)) == 4 and acks(ev) >= 10,
    )
    on = first_instances(run.events())
    victim = next(
        n for n, g in enumerate(stack.gateways, 1) if g.instance in on.values()
    )
    instance = stack.gateways[victim - 1].instance
    hit = {t for t, i in on.items() if i == instance}
    killed_at = time.time()
    stack.kill_gateway(victim)
    run.wait_until("3 acks for each hit talker after the kill", lambda ev: all(
        acks(ev, killed_at, {t}) >= 3 for t in hit))  # fmt: skip
    stdout, events = run.finish()

    summary = events[-1]
    assert summary["event"] == "summary"
    assert summary["acked"] == summary["stored"] == acks(events) >= 16
    for talker in hit:
        instances = summary["talkers"][talker]["instances"]
        assert len(instances) >= 2 and instance not in instances[1:], instances
    print(stdout)


def test_traffic_rides_out_a_broker_restart(
    stack: Stack, traffic_run: Callable[[int], Traffic]
) -> None:
    run = traffic_run(2)
    run.wait_until("10 acks", lambda ev: acks(ev) >= 10)
    stack.rabbitmq.stop()
    down_at = time.time()
    run.wait_until("3 says answered unavailable", lambda ev: sum(
        e.get("answer") == "unavailable" and e["sent_at"] > down_at for e in ev) >= 3)  # fmt: skip
    starting_at = time.time()
    stack.rabbitmq.start()
    run.wait_until(
        "5 acks after the broker start", lambda ev: acks(ev, starting_at) >= 5, 120
    )
    stdout, events = run.finish()

    while_down = [
        e
        for e in events
        if e["event"] == "say" and down_at <= e["sent_at"] <= starting_at
    ]
    assert while_down and {e["answer"] for e in while_down} == {"unavailable"}, (
        while_down
    )
    summary = events[-1]
    assert summary["acked"] == summary["stored"] == acks(events) >= 15
    print(stdout)
