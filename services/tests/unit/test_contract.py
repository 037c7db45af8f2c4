"""Every contract name the Python side uses exists in contract.toml (the Nix side and the
browser client have their own checks under tests/repo/)."""

import re
from pathlib import Path

from chatstack import contract

PACKAGE = Path(contract.__file__).parent


def python_sources() -> list[Path]:
    return [
        p for p in PACKAGE.rglob("*.py") if "devstack" not in p.parts and "probe" not in p.parts
    ]


def names_used(pattern: str) -> set[str]:
    found: set[str] = set()
    for path in python_sources():
        found |= set(re.findall(pattern, path.read_text()))
    return found


def test_metric_names_used_in_code_are_declared() -> None:
    used = names_used(r'\.(?:incr|gauge|timing)\(\s*"([^"]+)"')
    assert used, "the scan found no metric calls: the pattern is broken"
    assert used <= set(contract.metric_names()), used - set(contract.metric_names())


def test_metric_declarations_are_used() -> None:
    used = names_used(r'\.(?:incr|gauge|timing)\(\s*"([^"]+)"')
    assert set(contract.metric_names()) <= used, set(contract.metric_names()) - used


def test_routes_ports_and_amqp_names_used_in_code_exist() -> None:
    for accessor, section in (("route", "routes"), ("port", "ports"), ("amqp", "amqp")):
        used = names_used(rf'contract\.{accessor}\(\s*"([^"]+)"')
        assert used, f"no contract.{accessor}() call found"
        assert used <= set(contract.section(section)), (
            section,
            used - set(contract.section(section)),
        )


def test_error_codes_used_in_code_are_declared() -> None:
    used = names_used(r'(?:error|ProtocolError|_send_error)\(\s*"([a-z_]+)"')
    assert {"rate_limited", "bad_json", "unavailable"} <= used
    # _refuse(...) codes of the history API are HTTP answers, not frames.
    assert used <= set(contract.error_codes()), used - set(contract.error_codes())


def test_permission_templates_render_to_least_privilege() -> None:
    gateway = contract.permission_patterns("gateway")
    history = contract.permission_patterns("history")
    exchange, queue = contract.amqp("exchange"), contract.amqp("history_queue")
    assert re.fullmatch(gateway["write"], exchange)
    assert re.fullmatch(gateway["read"], "amq.gen-AbC123")
    assert not re.fullmatch(gateway["read"], queue)  # a gateway cannot drain history
    assert not re.fullmatch(gateway["configure"], queue)
    assert re.fullmatch(history["read"], queue)
    assert not re.fullmatch(history["write"], exchange)  # history cannot publish
    assert not re.fullmatch(history["read"], "amq.gen-AbC123")
    # Dots are escaped: "chatXmessages" is not the exchange.
    assert not re.fullmatch(gateway["write"], exchange.replace(".", "X"))


def test_routing_keys_follow_the_history_binding() -> None:
    message_key = contract.routing_key("message", "lobby")
    binding = contract.amqp("history_binding_key")
    assert re.fullmatch(binding.replace(".", r"\.").replace("*", r"[^.]+"), message_key)
    assert not re.fullmatch(
        binding.replace(".", r"\.").replace("*", r"[^.]+"),
        contract.routing_key("presence", "lobby"),
    )
