"""chat-probe <flow> --url http://HOST:PORT [--timeout S] [--origin O] [--connections N]
chat-probe traffic --url URL (--until FILE | --duration S) [--talkers N] [--events FILE]

Output (stdout, one line each, no timings or random names so runs compare and grep well):

    chat-probe: <flow> against <url>
    <flow>: ok <what was checked>          one per step
    <flow>: PASS                           or: <flow>: FAIL <one-line reason>
    <flow>: SKIP <one-line reason>         "all" on a single gateway instance: the flows
                                           across gateways (cross-instance, members)
    all: PASS (7 flows)                    or: all: FAIL <failed flows>   (flow "all" only)
    all: PASS (5 flows, skipped: cross-instance, members)

Exit status: 0 every flow passed; 1 a check failed; 2 usage error; 3 the probe itself
crashed (a bug in the probe, traceback on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from . import traffic
from .flows import FLOWS, NEEDS_TWO_INSTANCES, Flow, cross_instance, members
from .recovery import RecoveryError
from .report import FlowFailed, Reporter, SingleInstance
from .target import Target, parse_base_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CRASHED = 0, 1, 2, 3
DEFAULT_TIMEOUT_S = 10.0
# A whole flow is bounded too (each wait is bounded by --timeout; this catches a flow
# that keeps making slow progress): this many times --timeout.
FLOW_BUDGET_TIMEOUTS = 30


def _positive(kind: type[float] | type[int]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-probe",
        description="Run a named end-to-end flow against a chatstack base URL.",
    )
    parser.add_argument("flow", choices=[*FLOWS, "all", "traffic"])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8088")
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for any single answer (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--origin",
        help="Origin the service's own page has, when --url is not its public name "
        "(default: the origin of --url)",
    )
    parser.add_argument(
        "--connections",
        type=_positive(int),
        default=cross_instance.DEFAULT_CONNECTIONS,
        help="cross-instance, members: connections to open while looking for a second gateway "
        f"(default {cross_instance.DEFAULT_CONNECTIONS})",
    )
    talk = parser.add_argument_group(
        "traffic", "talkers chat until stopped, riding out failures; then the books are checked"
    )
    talk.add_argument("--until", type=Path, metavar="FILE", help="stop once FILE exists")
    talk.add_argument("--duration", type=_positive(float), metavar="S", help="stop after S seconds")
    talk.add_argument(
        "--talkers",
        type=_positive(int),
        default=traffic.DEFAULT_TALKERS,
        help=f"users in the room (default {traffic.DEFAULT_TALKERS})",
    )
    talk.add_argument(
        "--events",
        type=Path,
        metavar="FILE",
        help="write every connect and say attempt, then a summary, as JSON lines to FILE",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Target]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        base = parse_base_url(args.url)
        origin = parse_base_url(args.origin) if args.origin else base
    except ValueError as exc:
        parser.error(str(exc))
    if args.flow == "traffic" and args.until is None and args.duration is None:
        parser.error("traffic needs --until FILE or --duration S (or both)")
    if args.flow != "traffic" and (args.until or args.duration or args.events):
        parser.error("--until, --duration and --events are options of the traffic flow")
    return args, Target(base_url=base, origin=origin, timeout=args.timeout)


PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


async def run_flow(
    name: str,
    flow: Flow,
    target: Target,
    reporter: Reporter,
    budget: float | None = None,
    may_skip: bool = False,
) -> str:
    budget = budget or target.timeout * FLOW_BUDGET_TIMEOUTS
    try:
        await asyncio.wait_for(flow(target, functools.partial(reporter.step, name)), budget)
    except SingleInstance as exc:
        if may_skip:
            reporter.skipped(name, str(exc))
            return SKIPPED
        reporter.failed(name, str(exc))
        return FAILED
    except (FlowFailed, RecoveryError) as exc:  # history breaking the protocol is a failed check
        reporter.failed(name, str(exc))
        return FAILED
    except TimeoutError:
        reporter.failed(name, f"flow did not finish within {budget:g}s")
        return FAILED
    reporter.passed(name)
    return PASSED


async def run(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    reporter = Reporter(out)
    out.write(f"chat-probe: {args.flow} against {target.base_url}\n")
    if args.flow == "traffic":
        return await run_traffic(args, target, reporter)
    flows = dict(FLOWS)
    flows["cross-instance"] = functools.partial(
        cross_instance.run, max_connections=args.connections
    )
    flows["members"] = functools.partial(members.run, max_connections=args.connections)
    names = list(flows) if args.flow == "all" else [args.flow]
    outcomes = {}
    for name in names:
        may_skip = args.flow == "all" and name in NEEDS_TWO_INSTANCES
        outcomes[name] = await run_flow(name, flows[name], target, reporter, may_skip=may_skip)
    failed = [name for name, outcome in outcomes.items() if outcome == FAILED]
    skipped = [name for name, outcome in outcomes.items() if outcome == SKIPPED]
    if args.flow == "all":
        if failed:
            reporter.failed("all", ", ".join(failed))
        elif skipped:
            passed = len(names) - len(skipped)
            out.write(f"all: PASS ({passed} flows, skipped: {', '.join(skipped)})\n")
        else:
            out.write(f"all: PASS ({len(names)} flows)\n")
    out.flush()
    return EXIT_FAILED if failed else EXIT_OK


async def run_traffic(args: argparse.Namespace, target: Target, reporter: Reporter) -> int:
    """The traffic flow runs as long as it is told to: its budget is that time plus the
    checks afterwards (which may wait for a broker or a gateway host to come back)."""
    with contextlib.ExitStack() as files:
        events = (
            files.enter_context(args.events.open("w", encoding="utf-8")) if args.events else None
        )
        flow = functools.partial(
            traffic.run,
            until=args.until,
            duration_s=args.duration,
            talkers=args.talkers,
            events=events,
        )
        # --until alone: no bound but the test that creates the file (and each wait's own).
        budget = (args.duration or 24 * 3600.0) + 2 * traffic.GIVE_UP_S
        outcome = await run_flow("traffic", flow, target, reporter, budget)
    return EXIT_OK if outcome == PASSED else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args, target = parse_args(argv)
    try:
        return asyncio.run(run(args, target, sys.stdout))
    except KeyboardInterrupt:
        return EXIT_FAILED
    except Exception:  # a bug in the probe, not a failed check: say so distinctly
        traceback.print_exc()
        sys.stdout.write(f"{args.flow}: FAIL probe crashed (bug in chat-probe), see stderr\n")
        return EXIT_CRASHED


if __name__ == "__main__":
    sys.exit(main())
