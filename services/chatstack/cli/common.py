"""What every entry point does the same way: config errors, logging, the event loop."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from ..config import Config, ConfigError, load_config
from ..logs import setup_logging
from ..runtime import ListenError


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
        fail(f"config error: {exc}", 2)


def run(config: Config, main: Callable[[Config], Coroutine[Any, Any, None]]) -> None:
    setup_logging(config.instance, config.log_level)
    try:
        asyncio.run(main(config))
    except ListenError as exc:
        fail(str(exc), 1)
