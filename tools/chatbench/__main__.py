"""``make bench`` / ``make bench-soak``: run the cases, print a table, write JSON.

    PYTHONPATH=tools .venv/bin/python -m chatbench [--targets stack,serve] [--seconds 10]
        [--cases 2,50,200,50@10000,200@10000] [--idle 2000] [--label NAME]
    PYTHONPATH=tools .venv/bin/python -m chatbench soak [--seconds 1800]

Loopback only; every case is bounded in time and stops by itself, and the services the bench
started are stopped when it ends (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chatstack import capacity, contract

from .cases import Case, RoomLoad, idle_case
from .peer import PeerTarget
from .report import table
from .soak import default_warmup_s, soak
from .targets import StackTarget, raise_fd_limit, start

DEFAULT_CASES = "2,50,200,50@10000,200@10000"


def parse_cases(text: str, senders: int, window: int) -> list[Case]:
    cases: list[Case] = []
    if text.strip() in ("", "none"):
        return cases  # only the idle case
    for item in text.split(","):
        members, _, rate = item.partition("@")
        n = int(members)
        cases.append(
            Case(
                name=f"{n} members"
                + (f" at {rate}/s" if rate else ", as fast as possible"),
                members=n,
                senders=min(n, senders),
                rate=float(rate) if rate else None,
                window=window,
            )
        )
    return cases


async def run_cases(
    target: Any, cases: list[Case], args: argparse.Namespace
) -> list[dict[str, Any]]:
    results = []
    for number, case in enumerate(cases):
        load = RoomLoad(target, case, f"bench-{int(time.time())}-{number}")
        try:
            await load.connect()
            result = await load.run(args.warmup, args.seconds, args.profile)
        finally:
            await load.close()
        result["target"] = target.name
        results.append(result)
        print(table([result]), flush=True)
        await asyncio.sleep(1)  # queues drain before the next case
    if args.idle and target.name == "stack":
        result = await idle_case(target, args.idle)
        result["target"] = target.name
        results.append(result)
        print(json.dumps(result), flush=True)
    return results


def git_revision() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() or "unknown"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chatbench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("mode", nargs="?", default="matrix", choices=["matrix", "soak"])
    parser.add_argument(
        "--targets", default="stack,peer,serve", help="stack, peer, serve"
    )
    parser.add_argument(
        "--cases",
        default=DEFAULT_CASES,
        help="members[@deliveries/s],... (none: only the idle case)",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="per case (soak: total)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before measuring (soak: the idempotency TTL; else 2)",
    )
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument(
        "--window", type=int, default=8, help="says in flight per sender"
    )
    parser.add_argument(
        "--idle", type=int, default=2000, help="idle sockets per gateway (0: skip)"
    )
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--profile", type=Path, help="py-spy each gateway into this folder"
    )
    parser.add_argument(
        "--services-from",
        type=Path,
        help="run the services from this source tree (e.g. an export of main's services/)",
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, kill) stops the services like Ctrl-C does, not orphaning them.
    signal.signal(signal.SIGTERM, _interrupt)
    args.out = args.out.resolve()  # RabbitMQ runs in its own directory
    if args.seconds is None:
        args.seconds = 1800.0 if args.mode == "soak" else 10.0
    if args.warmup is None:
        args.warmup = default_warmup_s() if args.mode == "soak" else 2.0
    if args.services_from is not None:
        # The services the bench starts import chatstack from there (PYTHONPATH comes before
        # the editable install); the bench itself and the devstack stay this checkout's.
        os.environ["PYTHONPATH"] = str(args.services_from.resolve())
    per_gateway = int(contract.section("connections")["websockets_per_gateway"])
    if args.idle > per_gateway:
        parser.error(
            f"--idle {args.idle}: the stack is sized for {per_gateway} websockets per gateway"
            " (contract connections.websockets_per_gateway, which sizes nginx and the"
            " gateways' limits together)"
        )
    # The cases' client sockets (the idle case's are held by helper processes) and the
    # stack's own files.
    fd_limit = raise_fd_limit(16384)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "label": args.label,
        "revision": git_revision(),
        "services_from": str(args.services_from or "this checkout"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fd_limit": fd_limit,
        "results": [],
    }
    names = ["stack"] if args.mode == "soak" else args.targets.split(",")
    unknown = set(names) - {"stack", "peer", "serve"}
    if unknown:
        parser.error(
            f"unknown target(s) {', '.join(sorted(unknown))}: stack, peer, serve"
        )
    cases = parse_cases(args.cases, args.senders, args.window)
    extra: dict[str, str] = {}
    if args.services_from is not None:
        # Services from another tree take their default cap from their own contract; hold
        # them to this one's, which sized the nginx and descriptor limits of this run.
        cap = capacity.max_connections(contract.section("connections"))
        extra["CHATSTACK_HTTP__MAX_CONNECTIONS"] = str(cap)
    try:
        if "stack" in names or "peer" in names:
            # The peer shares the stack's RabbitMQ (own vhost), so both run in one session.
            target = start("stack", args.out, extra, args.idle)
            try:
                if args.mode == "soak":
                    report["results"].append(
                        asyncio.run(soak(target, args.seconds, args.warmup))
                    )
                elif "stack" in names:
                    report["results"] += asyncio.run(run_cases(target, cases, args))
                if "peer" in names:
                    assert isinstance(target, StackTarget)
                    for case in cases:
                        # Fresh servers per case: the peer has no backpressure, so a backlog
                        # one case left in its RabbitMQ queues would be drained by the next.
                        peer = PeerTarget(target.stack, args.out / "peer")
                        try:
                            report["results"] += asyncio.run(
                                run_cases(peer, [case], args)
                            )
                        finally:
                            peer.stop()
            finally:
                target.stop()
        if "serve" in names:
            target = start("serve", args.out, extra)
            try:
                report["results"] += asyncio.run(run_cases(target, cases, args))
            finally:
                target.stop()
    except KeyboardInterrupt:
        print("interrupted: services stopped", file=sys.stderr)
        return 130
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"{args.mode}-{stamp}{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(report, indent=2))
    print()
    print(table([r for r in report["results"] if "members" in r]))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
