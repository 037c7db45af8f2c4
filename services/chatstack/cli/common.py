"""What every entry point does the same way: config errors, logging, the event loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from .. import contract
from ..config import Config, ConfigError, load_config
from ..history.store import StoreUnusable
from ..logs import setup_logging
from ..runtime import ListenError

log = logging.getLogger(__name__)


def exit_code(name: str) -> int:
    """An exit code a supervisor must not restart on (contract ``[exit_codes]``)."""
    return int(contract.section("exit_codes")[name])


def config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default: $CHATSTACK_CONFIG, else built-in defaults)",
    )


def fail(message: str, code: int) -> NoReturn:
    print(f"chatstack: {message}", file=sys.stderr)  # noqa: T201 - before logging exists
    raise SystemExit(code)


def load_or_exit(
    role: str, path: str | None, overrides: dict[str, tuple[str, str]] | None = None
) -> Config:
    try:
        return load_config(role, path, None, overrides)
    except ConfigError as exc:
        fail(f"config error: {exc}", exit_code("config_error"))


def run(config: Config, main: Callable[[Config], Coroutine[Any, Any, None]]) -> None:
    setup_logging(config.instance, config.log_level)
    try:
        with asyncio.Runner(loop_factory=loop_factory(config.event_loop)) as runner:
            loop = type(runner.get_loop())
            log.info(
                "event loop: %s.%s",
                loop.__module__,
                loop.__qualname__,
                extra={"event": "process.event_loop", "loop": loop.__module__.split(".")[0]},
            )
            runner.run(main(config))
    except ListenError as exc:
        fail(str(exc), 1)
    except StoreUnusable as exc:
        store_unusable(exc)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """``process.event_loop``: uvloop (less CPU per message, docs/performance.md) or the
    plain asyncio loop, which is also what runs when uvloop cannot be imported here."""
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            log.warning(
                "uvloop unavailable (%s): running on the asyncio event loop",
                exc,
                extra={"event": "process.event_loop_fallback"},
            )
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def store_unusable(exc: StoreUnusable) -> NoReturn:
    """One JSON error line and an exit code systemd does not restart on: a restart loop
    would only repeat this line (and on the broker, every restart returns deliveries)."""
    code = exit_code("store_unusable")
    log.error(
        "history store unusable, not starting: %s",
        exc,
        extra={"event": "history.store_unusable", "exit_code": code},
    )
    raise SystemExit(code)
