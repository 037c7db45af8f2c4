"""RabbitMQ definitions (vhost, users, permissions, exchanges, queues, bindings, the history
policy) from the contract.

Rendered as the JSON document RabbitMQ imports at boot (``definitions.local.path``), so the
broker comes up already provisioned and never creates its default ``guest`` user (RabbitMQ
skips the default user when definitions are configured for import). Passwords are random,
written to 0600 files for the services' ``broker.password_file``; the definitions only hold
salted SHA-256 hashes (RabbitMQ's ``rabbit_password_hashing_sha256``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from chatstack.devstack.contract import Contract

ROLES = ("gateway", "history")
HASHING = "rabbit_password_hashing_sha256"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def permission_names(contract: Contract) -> dict[str, str]:
    """Placeholder → regex-escaped name, as the contract's comment specifies."""
    amqp = contract["amqp"]
    return {
        "exchange": re.escape(amqp["exchange"]),
        "history_queue": re.escape(amqp["history_queue"]),
        "dead_letter_exchange": re.escape(amqp["dead_letter_exchange"]),
        "dead_letter_queue": re.escape(amqp["dead_letter_queue"]),
        "server_named": re.escape(amqp["server_named_queue_prefix"]),
    }


def render_permission(template: str, names: dict[str, str]) -> str:
    """Fill ``{exchange}``-style placeholders; an unknown one is an error, not left in place.

    Only ``{name}`` with a lower-case word is a placeholder, so regex quantifiers such as
    ``{1,64}`` pass through untouched.
    """

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in names:
            raise ValueError(
                f"contract permission template {template!r}: unknown placeholder {{{key}}}"
                f" (expected one of {', '.join(sorted(names))})"
            )
        return names[key]

    rendered = _PLACEHOLDER.sub(fill, template)
    re.compile(rendered)  # a template that is not a valid regex must fail here, not in RabbitMQ
    return rendered


def user(contract: Contract, role: str) -> dict[str, str]:
    """The contract's ``amqp.users.<role>`` table (name and permission templates)."""
    users = contract["amqp"]["users"]
    if role not in users:
        raise KeyError(f"no amqp.users.{role} in the contract (roles: {', '.join(users)})")
    return dict(users[role])


def password_hash(password: str) -> str:
    """RabbitMQ's salted SHA-256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def write_secret(path: Path, value: str) -> None:
    """Write a secret file created 0600 (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    path.chmod(0o600)


def ensure_passwords(directory: Path, contract: Contract) -> dict[str, Path]:
    """One random password file per role (kept across restarts of the same state dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = {}
    for role in ROLES:
        path = directory / f"{role}.password"
        if not path.exists():
            write_secret(path, secrets.token_urlsafe(24))
        files[role] = path
    return files


def read_password(path: Path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\n")


def render(contract: Contract, passwords: dict[str, Path]) -> dict[str, Any]:
    """The definitions document for the contract's vhost, users and topology."""
    amqp = contract["amqp"]
    vhost = amqp["vhost"]
    names = permission_names(contract)
    users, permissions = [], []
    for role in ROLES:
        spec = user(contract, role)
        users.append(
            {
                "name": spec["name"],
                "password_hash": password_hash(read_password(passwords[role])),
                "hashing_algorithm": HASHING,
                "tags": [],
            }
        )
        permissions.append(
            {
                "user": spec["name"],
                "vhost": vhost,
                **{k: render_permission(spec[k], names) for k in ("configure", "write", "read")},
            }
        )
    return {
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "exchanges": [
            _exchange(vhost, amqp["exchange"], amqp["exchange_type"]),
            _exchange(vhost, amqp["dead_letter_exchange"], amqp["dead_letter_exchange_type"]),
        ],
        "queues": [
            _queue(vhost, amqp["history_queue"], amqp["history_queue_type"]),
            _queue(vhost, amqp["dead_letter_queue"], amqp["history_queue_type"]),
        ],
        "bindings": [
            _binding(vhost, amqp["exchange"], amqp["history_queue"], amqp["history_binding_key"]),
            _binding(vhost, amqp["dead_letter_exchange"], amqp["dead_letter_queue"], ""),
        ],
        "policies": [history_policy(contract)],
    }


def history_policy(contract: Contract) -> dict[str, Any]:
    """Dead-lettering and the delivery limit of the history queue (docs/history-durability.md).

    A policy rather than queue arguments: it applies to a queue declared before it existed
    (arguments of a durable queue cannot change on redeclare) and can be edited live.
    ``at-least-once`` dead-lettering needs ``overflow: reject-publish`` (RabbitMQ quorum
    queues, since 3.10); without a max-length the overflow setting changes nothing else.
    """
    amqp = contract["amqp"]
    return {
        "name": amqp["history_policy"],
        "vhost": amqp["vhost"],
        "pattern": "^" + re.escape(amqp["history_queue"]) + "$",
        "apply-to": "queues",
        "priority": 0,
        "definition": {
            "dead-letter-exchange": amqp["dead_letter_exchange"],
            "dead-letter-strategy": "at-least-once",
            "overflow": "reject-publish",
            "delivery-limit": amqp["history_delivery_limit"],
        },
    }


def _exchange(vhost: str, name: str, kind: str) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "type": kind,
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }


def _queue(vhost: str, name: str, kind: str) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "durable": True,
        "auto_delete": False,
        "arguments": {"x-queue-type": kind},
    }


def _binding(vhost: str, source: str, queue: str, key: str) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": key,
        "arguments": {},
    }


def write(path: Path, document: dict[str, Any]) -> None:
    """The definitions hold password hashes: 0600 like the passwords themselves."""
    write_secret(path, json.dumps(document, indent=2, sort_keys=True))
