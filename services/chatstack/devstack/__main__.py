"""``python -m chatstack.devstack [up|down|ctl ...]``: what ``make stack``/``stack-stop`` run.

``up`` starts the local stack in the foreground, prints each component's address and log
file, and stops everything on Ctrl-C or SIGTERM. ``down`` (from another terminal) asks the
running ``up`` to stop and, if that process is gone, stops the processes it recorded.
``ctl ARGS`` runs ``rabbitmqctl ARGS`` against the stack's RabbitMQ node (its own node name,
epmd port and cookie, which a bare ``rabbitmqctl`` would not find).
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

from chatstack import capacity
from chatstack.devstack import contract as contract_mod
from chatstack.devstack import pki, procs, rabbitmq
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
        stack = Stack(state_dir, environ=os.environ)
    except (RuntimeError, OSError) as err:
        say(f"error: {err}")
        return 1
    # SIGHUP too: closing the terminal must not orphan the children (they have their own
    # sessions, so nothing else would stop them).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    say(f"starting the local stack (state in {state_dir}/) ...")
    try:
        timings = stack.start()
        state = {
            "orchestrator": _record(os.getpid()),
            "children": {name: _record(pid) for name, pid in stack.pids().items()},
            "url": stack.url,
            "rabbitmq": {
                "base_dir": str(stack.rabbitmq.spec.base_dir),
                "node_name": stack.rabbitmq.spec.node_name,
                "amqps_port": stack.rabbitmq.spec.amqps_port,
                "dist_port": stack.rabbitmq.spec.dist_port,
                "epmd_port": stack.rabbitmq.spec.epmd_port,
            },
        }
        state_file.write_text(json.dumps(state, indent=2))
        say("")
        for name, address, log_file in stack.components():
            say(f"  {name:<24} {address}\n  {'':<24} log: {log_file}")
        say("")
        sized = capacity.proxy(stack.contract["connections"], len(stack.gateways))
        say(
            f"  capacity: {sized.websockets // len(stack.gateways)} websockets per gateway,"
            f" {sized.websockets} through nginx (worker_connections {sized.worker_connections})"
        )
        for name, value in stack.overrides.items():
            say(f"  passed to the services: {name}={value}")
        for name in stack.ignored_variables:
            say(f"  ignored (names no config key): {name}")
        say(f"ready in {timings['total']:.1f} s (rabbitmq {timings['rabbitmq']:.1f} s)")
        say(f"open {stack.url} in two browser tabs")
        say(f"flows: .venv/bin/chat-probe cross-instance --url {stack.url}  (docs/local-stack.md)")
        say("Ctrl-C (or `make stack-stop` elsewhere) stops everything.")
        watch = StateChanges()
        while True:
            time.sleep(2)
            for part in [stack.history, *stack.gateways]:
                line = watch.line(part.instance, part.running(), str(part.log_file))
                if line is not None:
                    say(line)
            if not stack.nginx.running() or not stack.rabbitmq.running():
                say("warning: nginx or rabbitmq stopped; stopping the stack")
                return 1
    except Stop as why:
        say(f"\n{why}: stopping the stack ...")
        return 0
    except (RuntimeError, TimeoutError, ValueError) as err:
        say(f"error: {err}")
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        state_file.unlink(missing_ok=True)
        say("stopped.")


class StateChanges:
    """One line when a service stops or runs again, not one every check."""

    def __init__(self) -> None:
        self._running: dict[str, bool] = {}

    def line(self, name: str, running: bool, log_file: str) -> str | None:
        before = self._running.get(name, True)  # every part was running at ready
        self._running[name] = running
        if running == before:
            return None
        if running:
            return f"{name} is running again"
        return f"warning: {name} is not running (see {log_file})"


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


def ctl(state_dir: Path, args: list[str]) -> int:
    state_file = state_dir / "state.json"
    if not state_file.exists():
        say(f"no running stack recorded in {state_file}: start one with `make stack`")
        return 1
    node = json.loads(state_file.read_text())["rabbitmq"]
    contract = contract_mod.load()
    ca = pki.make_pki(state_dir / "pki")  # exists already: only its paths are needed
    spec = rabbitmq.BrokerSpec(
        base_dir=Path(node["base_dir"]),
        node_name=node["node_name"],
        amqps_port=node["amqps_port"],
        dist_port=node["dist_port"],
        epmd_port=node["epmd_port"],
        pki=ca,
        vhost=contract["amqp"]["vhost"],
    )
    try:
        sys.stdout.write(rabbitmq.Broker(spec, contract).ctl(*args))
    except RuntimeError as err:
        say(f"error: {err}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    # The options work before and after the command; SUPPRESS keeps a subcommand's
    # default from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="python -m chatstack.devstack", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--verbose", action="store_true", help="log every process start/stop")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("up", parents=[common], help="start the stack (foreground)")
    commands.add_parser("down", parents=[common], help="stop a running stack")
    ctl_parser = commands.add_parser("ctl", parents=[common], help="rabbitmqctl on its node")
    ctl_parser.add_argument("ctl_args", nargs=argparse.REMAINDER, help="rabbitmqctl arguments")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    state_dir = args.state_dir.resolve()
    if args.command == "ctl":
        return ctl(state_dir, args.ctl_args)
    if args.command == "down":
        return down(state_dir)
    return up(state_dir)


if __name__ == "__main__":
    raise SystemExit(main())
