"""The traffic flow's books: what counts as lost, duplicated or misattributed, and its CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatstack.probe.cli import EXIT_USAGE, parse_args
from chatstack.probe.report import FlowFailed
from chatstack.probe.traffic import check_acked_stored_once

ACKED = {"a 1": "01A", "b 1": "01B"}


def stored(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"text": text, "id": message_id} for text, message_id in pairs]


def test_every_acked_message_once_under_its_id_passes() -> None:
    check_acked_stored_once(ACKED, stored(("a 1", "01A"), ("b 1", "01B")), nothing_else=True)


@pytest.mark.parametrize(
    ("rows", "nothing_else", "reason"),
    [
        ((("a 1", "01A"),), False, "1 acked messages missing from history"),
        ((("a 1", "01A"), ("b 1", "01B"), ("b 1", "01C")), False, "stored more than once"),
        ((("a 1", "01A"), ("b 1", "01X")), False, "acked id differs from the stored one"),
        ((("a 1", "01A"), ("b 1", "01B"), ("c 1", "01C")), True, "stored but never acked"),
    ],
)
def test_books_that_do_not_add_up_fail(
    rows: tuple[tuple[str, str], ...], nothing_else: bool, reason: str
) -> None:
    with pytest.raises(FlowFailed, match=reason):
        check_acked_stored_once(ACKED, stored(*rows), nothing_else=nothing_else)


def test_unacked_extras_are_allowed_unless_asked() -> None:
    rows = stored(("a 1", "01A"), ("b 1", "01B"), ("c 1", "01C"))
    check_acked_stored_once(ACKED, rows)


def test_traffic_arguments(tmp_path: Path) -> None:
    args, _ = parse_args(
        ["traffic", "--url", "https://lb", "--until", str(tmp_path / "stop"), "--talkers", "4"]
    )
    assert (args.until, args.duration, args.talkers, args.events) == (
        tmp_path / "stop",
        None,
        4,
        None,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["traffic", "--url", "http://x"],  # runs forever: needs a stop condition
        ["traffic", "--url", "http://x", "--duration", "0"],
        ["traffic", "--url", "http://x", "--duration", "5", "--talkers", "0"],
        ["chat", "--url", "http://x", "--duration", "5"],  # a traffic option on another flow
    ],
)
def test_bad_traffic_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == EXIT_USAGE
