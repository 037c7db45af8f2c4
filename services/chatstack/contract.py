"""Access to contract.toml, the single source of truth shared with the Nix modules.

The file is read on first use (not at import) and cached: it is package data and never
changes while a process runs.
"""

from __future__ import annotations

import functools
import re
import tomllib
from importlib import resources
from typing import Any

CONTRACT_FILE = "contract.toml"


@functools.cache
def contract() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(CONTRACT_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def section(name: str) -> dict[str, Any]:
    value: dict[str, Any] = contract()[name]
    return value


def port(name: str) -> int:
    return int(section("ports")[name])


def route(name: str) -> str:
    return str(section("routes")[name])


def amqp(name: str) -> Any:
    return section("amqp")[name]


# What travels on the exchange: chat messages (durable, stored by history), presence events,
# and the gateways' member announcements and "who" requests (transient).
BROKER_KINDS = ("message", "presence", "members", "who")


def routing_key(kind: str, room: str) -> str:
    """Routing key of a broker message of ``kind`` (one of BROKER_KINDS) in ``room``."""
    if kind not in BROKER_KINDS:
        raise KeyError(kind)
    return str(amqp(f"{kind}_routing_key")).format(room=room)


def permission_patterns(role: str) -> dict[str, str]:
    """The configure/write/read regexes of a service user, names filled in and escaped."""
    names = {
        "exchange": re.escape(amqp("exchange")),
        "history_queue": re.escape(amqp("history_queue")),
        "dead_letter_exchange": re.escape(amqp("dead_letter_exchange")),
        "dead_letter_queue": re.escape(amqp("dead_letter_queue")),
        "server_named": re.escape(amqp("server_named_queue_prefix")),
    }
    user = amqp("users")[role]
    return {perm: user[perm].format(**names) for perm in ("configure", "write", "read")}


def error_codes() -> dict[str, str]:
    codes: dict[str, str] = section("protocol")["error_codes"]
    return codes


def metric_names() -> dict[str, dict[str, str]]:
    names: dict[str, dict[str, str]] = section("metrics")
    return names
