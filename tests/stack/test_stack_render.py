"""The stack's renderers, without starting anything: definitions, service configs, TOML."""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
from pathlib import Path

import pytest
from chatstack.devstack import contract as contract_mod
from chatstack.devstack import definitions, tomlout

CONTRACT = contract_mod.load()
AMQP = CONTRACT["amqp"]


def test_permissions_are_the_contract_templates_with_escaped_names(
    tmp_path: Path,
) -> None:
    passwords = definitions.ensure_passwords(tmp_path, CONTRACT)
    document = definitions.render(CONTRACT, passwords)
    by_user = {p["user"]: p for p in document["permissions"]}
    gateway = by_user[AMQP["users"]["gateway"]["name"]]
    prefix = re.escape(AMQP["server_named_queue_prefix"])
    assert gateway["configure"] == f"^({prefix}.*|{re.escape(AMQP['exchange'])})$"
    # The escaped dot must not match any character: "chatXmessages" is not the exchange.
    assert re.fullmatch(gateway["write"], AMQP["exchange"])
    assert not re.fullmatch(gateway["write"], AMQP["exchange"].replace(".", "X"))
    history = by_user[AMQP["users"]["history"]["name"]]
    assert re.fullmatch(history["read"], AMQP["history_queue"])
    assert not re.fullmatch(history["write"], AMQP["exchange"])
    assert {p["vhost"] for p in document["permissions"]} == {AMQP["vhost"]}


def test_topology_comes_from_the_contract(tmp_path: Path) -> None:
    document = definitions.render(
        CONTRACT, definitions.ensure_passwords(tmp_path, CONTRACT)
    )
    history, dead = document["queues"]
    for queue, name in ((history, "history_queue"), (dead, "dead_letter_queue")):
        assert queue["name"] == AMQP[name] and queue["durable"] is True
        assert queue["arguments"] == {"x-queue-type": AMQP["history_queue_type"]}
    exchanges = {(e["name"], e["type"]) for e in document["exchanges"]}
    assert exchanges == {
        (AMQP["exchange"], AMQP["exchange_type"]),
        (AMQP["dead_letter_exchange"], AMQP["dead_letter_exchange_type"]),
    }
    bindings = {
        (b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]
    }
    assert bindings == {
        (AMQP["exchange"], AMQP["history_queue"], AMQP["history_binding_key"]),
        (AMQP["dead_letter_exchange"], AMQP["dead_letter_queue"], ""),
    }
    (policy,) = document["policies"]
    assert re.fullmatch(policy["pattern"], AMQP["history_queue"])
    assert not re.fullmatch(policy["pattern"], AMQP["dead_letter_queue"])
    assert policy["definition"] == {
        "dead-letter-exchange": AMQP["dead_letter_exchange"],
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
        "delivery-limit": AMQP["history_delivery_limit"],
    }
    assert [u["name"] for u in document["users"]] == [
        AMQP["users"][r]["name"] for r in definitions.ROLES
    ]
    assert "guest" not in {u["name"] for u in document["users"]}


def test_definitions_hold_hashes_not_passwords(tmp_path: Path) -> None:
    passwords = definitions.ensure_passwords(tmp_path, CONTRACT)
    document = definitions.render(CONTRACT, passwords)
    text = str(document)
    for role, path in passwords.items():
        secret = definitions.read_password(path)
        assert len(secret) >= 24
        assert secret not in text
        assert path.stat().st_mode & 0o777 == 0o600
        user = next(
            u for u in document["users"] if u["name"] == AMQP["users"][role]["name"]
        )
        raw = base64.b64decode(user["password_hash"])
        salt, digest = raw[:4], raw[4:]
        assert hashlib.sha256(salt + secret.encode()).digest() == digest


def test_passwords_are_kept_across_restarts(tmp_path: Path) -> None:
    first = {
        r: definitions.read_password(p)
        for r, p in definitions.ensure_passwords(tmp_path, CONTRACT).items()
    }
    again = {
        r: definitions.read_password(p)
        for r, p in definitions.ensure_passwords(tmp_path, CONTRACT).items()
    }
    assert first == again and first["gateway"] != first["history"]


def test_unknown_placeholder_is_an_error_and_quantifiers_pass() -> None:
    names = definitions.permission_names(CONTRACT)
    with pytest.raises(ValueError, match="unknown placeholder"):
        definitions.render_permission("^{exchange}|{nonsense}$", names)
    assert definitions.render_permission("^a{1,3}$", names) == "^a{1,3}$"
    with pytest.raises(re.error):
        definitions.render_permission("^({exchange}$", names)


def test_toml_writer_round_trips_and_refuses_what_it_cannot_write() -> None:
    document = {
        "instance": 'gw-"1"\\',
        "http": {"host": "127.0.0.1", "port": 8101, "xheaders": True, "t": 1.5},
        "gateway": {
            "allowed_origins": ["http://127.0.0.1:8088", "http://localhost:8088"]
        },
    }
    assert tomllib.loads(tomlout.dumps(document)) == document
    with pytest.raises(TypeError):
        tomlout.dumps({"a": {"b": {"c": 1}}})
    with pytest.raises(TypeError):
        tomlout.dumps({"a": None})
    with pytest.raises(ValueError):
        tomlout.dumps({"a": float("nan")})
