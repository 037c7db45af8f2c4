"""The bench cases: one room of N members spread over the gateways, some of them saying
things as fast as the stack answers (a closed loop: a sender keeps ``window`` messages
between its say and seeing the message itself) or at a fixed rate of deliveries."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import profile
from .holder import source_address
from .procstat import CpuMeter, process_tree, rss_bytes
from .targets import Target
from .wsclient import WsProtocol, connect

_TEXT_MARK = b'"text":"'
_ACK_PREFIX = b'{"type":"ack"'
_MSG_PREFIX = b'{"type":"message"'
_CMID_MARK = b'"client_msg_id":"'
_TS_MARK = b'"ts":'
# monotonic -> wall clock, to compare our stamps with the gateways' "ts" (same machine)
_WALL_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def _server_ts_ns(payload: bytes) -> int | None:
    start = payload.find(_TS_MARK)
    if start < 0:
        return None
    start += len(_TS_MARK)
    end = start
    while end < len(payload) and payload[end : end + 1].isdigit():
        end += 1
    return int(payload[start:end]) * 1_000_000 if end > start else None


@dataclass
class Case:
    name: str
    members: int
    senders: int
    rate: float | None  # deliveries/s, None: as fast as possible
    window: int = 8


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index] / 1e6  # ns -> ms


@dataclass
class Member:
    index: int
    protocol: WsProtocol | None = None
    instance: str = ""
    welcomed: asyncio.Future[None] | None = None
    joined: asyncio.Future[None] | None = None
    seen_own: Callable[[], None] | None = None


@dataclass
class Tally:
    measuring: bool = False
    deliveries: int = 0
    by_instance: dict[str, int] = field(default_factory=dict)
    delivery_ns: list[int] = field(default_factory=list)
    # due -> the gateway gave the message its id and time (chatstack only: "ts", in ms)
    accepted_ns: list[int] = field(default_factory=list)
    ack_ns: list[int] = field(default_factory=list)
    acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    closes: dict[str, int] = field(default_factory=dict)
    acked_ids: list[str] = field(default_factory=list)


def _field(payload: bytes, mark: bytes) -> bytes:
    """The string value after ``mark`` (``"name":"``; a space after the colon is allowed)."""
    start = payload.find(mark)
    if start < 0:
        name = mark[: mark.index(b":") + 1]
        start = payload.find(name)
        if start < 0:
            return b""
        start = payload.index(b'"', start + len(name)) + 1
    else:
        start += len(mark)
    return payload[start : payload.index(b'"', start)]


class RoomLoad:
    def __init__(
        self, target: Target, case: Case, room: str, keep_ids: bool = False
    ) -> None:
        self.target = target
        self.case = case
        self.room = room
        self.tally = Tally()
        self.members = [Member(n) for n in range(case.members)]
        self.keep_ids = keep_ids
        self.socketio = target.dialect == "socketio"

    def _on_text(self, member: Member) -> Callable[[bytes], None]:
        tally = self.tally
        sender = member.index < self.case.senders
        socketio = self.socketio

        def delivered(text: bytes, now: int) -> None:
            if tally.measuring:
                tally.deliveries += 1
                by = tally.by_instance
                by[member.instance] = by.get(member.instance, 0) + 1
                tally.delivery_ns.append(now - int(text.split(b":")[1]))
            if sender and text.startswith(b"%d:" % member.index) and member.seen_own:
                member.seen_own()

        def acked(cmid: bytes, now: int) -> None:
            if tally.measuring:
                tally.acked += 1
                tally.ack_ns.append(now - int(cmid.split(b".")[1]))

        def on_socketio(payload: bytes) -> None:
            # Engine.IO 4 / Socket.IO 5 packets: 0 open, 2 ping, 40 connected, 42 event,
            # 43<id> ack (the join is ack 0, says 1 and up).
            now = time.monotonic_ns()
            assert member.protocol is not None
            if payload.startswith(b'42["message"'):
                delivered(_field(payload, _TEXT_MARK), now)
            elif payload.startswith(b"430"):
                member.instance = _field(payload, b'"instance":"').decode()
                if member.joined and not member.joined.done():
                    member.joined.set_result(None)
            elif payload.startswith(b"43"):
                acked(_field(payload, _CMID_MARK), now)
            elif payload == b"2":
                member.protocol.send_text(b"3")
            elif payload.startswith(b"40"):
                if member.welcomed and not member.welcomed.done():
                    member.welcomed.set_result(None)
            elif payload.startswith(b"0"):
                member.protocol.send_text(b"40")

        def on_text(payload: bytes) -> None:
            if socketio:
                on_socketio(payload)
                return
            now = time.monotonic_ns()
            if payload.startswith(_MSG_PREFIX):
                text = _field(payload, _TEXT_MARK)
                delivered(text, now)
                if tally.measuring:
                    server_ns = _server_ts_ns(payload)
                    if server_ns is not None:
                        due = int(text.split(b":")[1]) + _WALL_OFFSET_NS
                        tally.accepted_ns.append(server_ns - due)
            elif payload.startswith(_ACK_PREFIX):
                acked(_field(payload, _CMID_MARK), now)
                if self.keep_ids:  # warm-up included: every ack is checked
                    tally.acked_ids.append(json.loads(payload)["id"])
            else:
                frame = json.loads(payload)
                kind = frame.get("type")
                if kind == "welcome" and member.welcomed and not member.welcomed.done():
                    member.instance = frame["instance"]
                    member.welcomed.set_result(None)
                elif kind == "presence":
                    if (
                        frame.get("event") == "join"
                        and member.joined
                        and not member.joined.done()
                    ):
                        member.joined.set_result(None)
                elif kind == "error":
                    code = frame.get("code", "?")
                    tally.errors[code] = tally.errors.get(code, 0) + 1

        return on_text

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()

        async def one(member: Member) -> None:
            member.welcomed = loop.create_future()
            member.joined = loop.create_future()
            member.protocol = await connect(
                self.target.host,
                self.target.port,
                self._on_text(member),
                path=self.target.path,
                source=source_address(member.index),
                made=lambda protocol: setattr(member, "protocol", protocol),
            )
            await asyncio.wait_for(member.welcomed, 15)
            nick = f"m{member.index}"
            if self.socketio:
                join = "420" + json.dumps(["join", {"room": self.room, "nick": nick}])
            else:
                join = json.dumps({"type": "join", "room": self.room, "nick": nick})
            member.protocol.send_text(join.encode())
            await asyncio.wait_for(member.joined, 15)

        for start in range(0, len(self.members), 100):
            await asyncio.gather(*(one(m) for m in self.members[start : start + 100]))

    def _say(self, member: Member, seq: int, stamp_ns: int) -> None:
        assert member.protocol is not None
        text = f"{member.index}:{stamp_ns}:{seq}"
        say = {"room": self.room, "text": text, "client_msg_id": f"{seq}.{stamp_ns}"}
        if self.socketio:
            frame = f"42{seq}" + json.dumps(["say", say], separators=(",", ":"))
        else:
            frame = json.dumps({"type": "say", **say}, separators=(",", ":"))
        member.protocol.send_text(frame.encode())

    async def _closed_loop(self, member: Member, stop: asyncio.Event) -> None:
        credit = asyncio.Semaphore(self.case.window)
        member.seen_own = credit.release
        seq = 0
        while not stop.is_set():
            await credit.acquire()
            seq += 1
            self._say(member, seq, time.monotonic_ns())

    async def _paced(self, member: Member, stop: asyncio.Event, per_s: float) -> None:
        gap_ns = int(1e9 / per_s)
        due = time.monotonic_ns()
        seq = 0
        while not stop.is_set():
            now = time.monotonic_ns()
            while due <= now:
                seq += 1
                # Stamped with when it was due: a late send counts as latency (no
                # coordinated omission).
                self._say(member, seq, due)
                due += gap_ns
            await asyncio.sleep((due - now) / 1e9)

    async def run(
        self, warmup_s: float, duration_s: float, profile_dir: Path | None = None
    ) -> dict[str, Any]:
        case = self.case
        stop = asyncio.Event()
        senders = self.members[: case.senders]
        if case.rate is None:
            tasks = [asyncio.create_task(self._closed_loop(m, stop)) for m in senders]
        else:
            per_sender = case.rate / case.members / case.senders
            tasks = [
                asyncio.create_task(self._paced(m, stop, per_sender)) for m in senders
            ]
        await asyncio.sleep(warmup_s)
        meter = CpuMeter(self.target.groups)
        own = os.times()
        meter.start()
        began = time.monotonic()
        self.tally.measuring = True
        profilers = profile.start(self.target, self.case.name, duration_s, profile_dir)
        await asyncio.sleep(duration_s)
        self.tally.measuring = False
        elapsed = time.monotonic() - began
        cpu = meter.stop()
        own_after = os.times()
        stop.set()
        for member in senders:
            if member.seen_own:
                member.seen_own()
        await asyncio.gather(*tasks)
        await profile.finish(profilers)
        return self._result(
            elapsed, cpu, own_after.user + own_after.system - own.user - own.system
        )

    def _result(
        self, elapsed: float, cpu: dict[str, float], own_cpu: float
    ) -> dict[str, Any]:
        tally = self.tally
        delivery = sorted(tally.delivery_ns)
        accepted = sorted(tally.accepted_ns)
        ack = sorted(tally.ack_ns)
        per_gateway = {}
        for instance, group in self.target.gateway_groups.items():
            delivered = tally.by_instance.get(instance, 0)
            per_gateway[instance] = {
                "deliveries": delivered,
                "cpu_s": round(cpu.get(group, 0.0), 3),
                "cpu_us_per_delivery": round(cpu.get(group, 0.0) * 1e6 / delivered, 2)
                if delivered
                else None,
            }
        closes = sum(1 for m in self.members if m.protocol and m.protocol.closed.done())
        return {
            "case": self.case.name,
            "members": self.case.members,
            "senders": self.case.senders,
            "target_deliveries_per_s": self.case.rate,
            "seconds": round(elapsed, 2),
            "messages_per_s": round(tally.acked / elapsed, 1),
            "deliveries_per_s": round(tally.deliveries / elapsed, 1),
            # Deliveries / (acked messages x members): below 1, messages were acked but not
            # (yet) delivered to everyone when the case ended.
            "delivered_fraction": round(
                tally.deliveries / (tally.acked * self.case.members), 3
            )
            if tally.acked
            else None,
            "delivery_ms": {
                "p50": round(percentile(delivery, 0.5), 2),
                "p99": round(percentile(delivery, 0.99), 2),
                "p99.9": round(percentile(delivery, 0.999), 2),
            },
            # How much of the delivery latency is before the gateway took the say (the
            # sender's socket, nginx, the gateway's loop): ms resolution, truncated.
            "accepted_ms": {
                "p50": round(percentile(accepted, 0.5), 2),
                "p99": round(percentile(accepted, 0.99), 2),
            }
            if accepted
            else None,
            "ack_ms": {
                "p50": round(percentile(ack, 0.5), 2),
                "p99": round(percentile(ack, 0.99), 2),
                "p99.9": round(percentile(ack, 0.999), 2),
            },
            "cpu_percent": {k: round(v * 100 / elapsed, 1) for k, v in cpu.items()}
            | {"loadgen": round(own_cpu * 100 / elapsed, 1)},
            "per_gateway": per_gateway,
            "errors": dict(tally.errors),
            "closed_sockets": closes,
        }

    async def close(self) -> None:
        for member in self.members:
            if member.protocol and member.protocol.transport:
                member.protocol.transport.close()
        await asyncio.sleep(0.2)


# Idle sockets per holder process (chatbench.holder): well under a descriptor limit of 20k,
# which a container may impose on every process without a way to raise it.
HOLDER_SOCKETS = 10000


async def _start_holder(
    target: Target, first: int, count: int
) -> asyncio.subprocess.Process:
    # PYTHONPATH: this chatbench (--services-from points the services' elsewhere).
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbench.holder",
        target.host,
        str(target.port),
        str(first),
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )


async def _release(holders: list[asyncio.subprocess.Process]) -> None:
    for holder in holders:
        if holder.stdin is not None:
            holder.stdin.close()
    for holder in holders:
        try:
            await asyncio.wait_for(holder.wait(), 30)
        except TimeoutError:
            holder.kill()
            await holder.wait()


async def idle_case(
    target: Target, per_gateway: int, probes: int = 200
) -> dict[str, Any]:
    """``per_gateway`` idle joined websockets per gateway (10 per room), then a two-member
    room elsewhere: RSS growth per connection and that room's say -> delivery latency.
    The idle sockets are held by helper processes (chatbench.holder), HOLDER_SOCKETS each,
    started one after the other."""
    gateways = len(target.gateway_groups)
    total = per_gateway * gateways
    groups = list(target.gateway_groups.values())
    rss_before = {g: rss_bytes(process_tree(target.groups[g][0])) for g in groups}
    holders: list[asyncio.subprocess.Process] = []
    joined = failures = 0
    errors: list[str] = []
    began = time.monotonic()
    try:
        for first in range(0, total, HOLDER_SOCKETS):
            holder = await _start_holder(
                target, first, min(HOLDER_SOCKETS, total - first)
            )
            holders.append(holder)
            assert holder.stdout is not None
            line = await holder.stdout.readline()
            if not line:
                raise RuntimeError("an idle-socket holder exited before reporting")
            report = json.loads(line)
            joined += report["joined"]
            failures += report["failed"]
            if report["error"]:
                errors.append(report["error"])
            if failures:
                break
        await asyncio.sleep(2)  # joins and presence settle
        rss_after = {g: rss_bytes(process_tree(target.groups[g][0])) for g in groups}
        opened_s = time.monotonic() - began
        live = Case("idle-probe", members=2, senders=1, rate=None, window=1)
        load = RoomLoad(target, live, "idle-probe")
        load.members = [Member(total + 1000), Member(total + 1001)]
        load.members[0].index, load.members[1].index = 0, 1
        await load.connect()
        result = await load.run(0.5, probes / 100)
        await load.close()
    finally:
        await _release(holders)
    await asyncio.sleep(0.5)
    per_conn = {
        g: round((rss_after[g] - rss_before[g]) / max(1, joined / gateways))
        for g in groups
    }
    return {
        "case": "idle",
        "idle_connections": joined,
        "failed_connections": failures,
        "first_error": errors[0] if errors else "",
        "holder_processes": len(holders),
        "open_seconds": round(opened_s, 1),
        "rss_bytes_per_connection": per_conn,
        "probe_room": {
            k: result[k] for k in ("messages_per_s", "delivery_ms", "ack_ms")
        },
    }
