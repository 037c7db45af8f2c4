"""``python -m chatstack.devstack [up|down]`` — what ``make stack`` / ``make stack-stop`` run.

``up`` starts the local stack in the foreground, prints each component's address and log
file, and stops everything on Ctrl-C or SIGTERM. ``down`` (from another terminal) asks the
running ``up`` to stop and, if that process is gone, stops the processes it recorded.
The state (keys, passwords, data, logs, ``state.json``) lives under ``--state-dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from chatstack.devstack import procs
from chatstack.devstack.stack import Stack

log = logging.getLogger("chatstack.devstack")

DEFAULT_STATE_DIR = Path("var/stack")


def say(line: str) -> None:
    """Status lines for the person at the terminal (the CLI's output, not logging)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT so cleanup runs in ``finally``."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _record(pid: int) -> dict[str, int | None]:
    return {"pid": pid, "start": procs.start_time(pid)}


def up(state_dir: Path) -> int:
    state_file = state_dir / "state.json"
    if state_file.exists():
        previous = json.loads(state_file.read_text())
        me = previous.get("orchestrator", {})
        if procs.start_time(me.get("pid", -1)) == me.get("start") is not None:
            say(f"a stack is already running (pid {me['pid']}): stop it with `make stack-stop`")
            return 1
        _stop_leftovers(previous)
    try:
        stack = Stack(state_dir)
    except (RuntimeError, OSError) as err:
        say(f"error: {err}")
        return 1
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    say(f"starting the local stack (state in {state_dir}/) ...")
    try:
        timings = stack.start()
        state = {
            "orchestrator": _record(os.getpid()),
            "children": {name: _record(pid) for name, pid in stack.pids().items()},
            "url": stack.url,
        }
        state_file.write_text(json.dumps(state, indent=2))
        say("")
        for name, address, log_file in stack.components():
            say(f"  {name:<24} {address}\n  {'':<24} log: {log_file}")
        say("")
        say(f"ready in {timings['total']:.1f} s (rabbitmq {timings['rabbitmq']:.1f} s)")
        say(f"open {stack.url} in two browser tabs")
        say(f"flows: .venv/bin/chat-probe cross-instance --url {stack.url}  (docs/local-stack.md)")
        say("Ctrl-C (or `make stack-stop` elsewhere) stops everything.")
        while True:
            time.sleep(2)
            for part in [stack.history, *stack.gateways]:
                if not part.running():
                    say(f"warning: {part.instance} is not running (see {part.log_file})")
            if not stack.nginx.running() or not stack.rabbitmq.running():
                say("warning: nginx or rabbitmq stopped; stopping the stack")
                return 1
    except Stop as why:
        say(f"\n{why}: stopping the stack ...")
        return 0
    except (RuntimeError, TimeoutError) as err:
        say(f"error: {err}")
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        state_file.unlink(missing_ok=True)
        say("stopped.")


def _stop_leftovers(state: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    stopped = []
    for name, rec in state.get("children", {}).items():
        if procs.stop_recorded(rec["pid"], rec.get("start")):
            stopped.append(name)
    return stopped


def down(state_dir: Path) -> int:
    state_file = state_dir / "state.json"
    if not state_file.exists():
        say(f"no stack recorded in {state_file}: nothing to stop")
        return 0
    state = json.loads(state_file.read_text())
    me = state.get("orchestrator", {})
    # The orchestrator shares the terminal's process group (make, the shell): signal it alone.
    if procs.stop_recorded(me.get("pid", -1), me.get("start"), timeout=90, group=False):
        say(f"asked the stack (pid {me['pid']}) to stop; it has stopped")
    leftovers = _stop_leftovers(state)
    if leftovers:
        say(f"stopped leftover processes: {', '.join(leftovers)}")
    state_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatstack.devstack", description=__doc__)
    parser.add_argument("command", nargs="?", default="up", choices=["up", "down"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--verbose", action="store_true", help="log every process start/stop")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    state_dir = args.state_dir.resolve()
    return up(state_dir) if args.command == "up" else down(state_dir)


if __name__ == "__main__":
    raise SystemExit(main())
