import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatstack import contract, protocol
from chatstack.protocol import Join, Leave, ProtocolError, Rules, Say, parse_client_frame

RULES = Rules.from_contract(max_text_bytes=20)
CODES = set(contract.error_codes())


def refused(raw: str | bytes) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_client_frame(raw, RULES)
    assert info.value.code in CODES
    return info.value.code


def test_valid_frames() -> None:
    assert parse_client_frame('{"type":"join","room":"lobby","nick":"ada"}', RULES) == Join(
        "lobby", "ada"
    )
    token = "A" * 22
    join = json.dumps({"type": "join", "room": "lobby", "nick": "ada", "client_token": token})
    assert parse_client_frame(join, RULES) == Join("lobby", "ada", token)
    assert parse_client_frame('{"type":"leave","room":"a-b_c"}', RULES) == Leave("a-b_c")
    say = '{"type":"say","room":"r","text":"héllo","client_msg_id":"k1:2","extra":1}'
    assert parse_client_frame(say, RULES) == Say("r", "héllo", "k1:2")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        (b'{"type":"join"}', "bad_json"),
        ("[1,2]", "bad_frame"),
        ('"join"', "bad_frame"),
        ('{"room":"x"}', "bad_frame"),
        ('{"type":7}', "bad_frame"),
        ('{"type":"shout"}', "unknown_type"),
        ('{"type":"join","room":"no spaces","nick":"a"}', "bad_room"),
        ('{"type":"join","room":"' + "r" * 65 + '","nick":"a"}', "bad_room"),
        ('{"type":"join","room":"lobby\\n","nick":"a"}', "bad_room"),
        ('{"type":"join","room":"lobby","nick":""}', "bad_nick"),
        ('{"type":"join","room":"lobby","nick":"<b>"}', "bad_nick"),
        ('{"type":"join","room":"lobby"}', "bad_nick"),
        ('{"type":"join","room":"lobby","nick":"a","client_token":"short"}', "bad_client_token"),
        (
            '{"type":"join","room":"lobby","nick":"a","client_token":' + '"' + "x" * 21 + '"}',
            "bad_client_token",
        ),
        ('{"type":"join","room":"lobby","nick":"a","client_token":null}', "bad_client_token"),
        ('{"type":"leave"}', "bad_room"),
        ('{"type":"say","room":"r","client_msg_id":"c"}', "bad_text"),
        ('{"type":"say","room":"r","text":"","client_msg_id":"c"}', "bad_text"),
        ('{"type":"say","room":"r","text":5,"client_msg_id":"c"}', "bad_text"),
        ('{"type":"say","room":"r","text":"\\ud800","client_msg_id":"c"}', "bad_text"),
        (
            '{"type":"say","room":"r","text":"' + "x" * 21 + '","client_msg_id":"c"}',
            "text_too_long",
        ),
        ('{"type":"say","room":"r","text":"ok","client_msg_id":"a b"}', "bad_client_msg_id"),
        ('{"type":"say","room":"r","text":"ok"}', "bad_client_msg_id"),
    ],
)
def test_each_refusal_has_its_code(raw: str, code: str) -> None:
    assert refused(raw) == code


def test_text_limit_counts_utf8_bytes() -> None:
    # 7 characters, 21 bytes: over the 20-byte limit although short in characters.
    too_long = json.dumps({"type": "say", "room": "r", "text": "€" * 7, "client_msg_id": "c"})
    assert refused(too_long) == "text_too_long"
    ok = json.dumps({"type": "say", "room": "r", "text": "€" * 6, "client_msg_id": "c"})
    assert isinstance(parse_client_frame(ok, RULES), Say)


def test_every_documented_code_exists_in_the_contract() -> None:
    documented = {
        "bad_json", "bad_frame", "unknown_type", "bad_room", "bad_nick", "bad_text",
        "text_too_long", "bad_client_msg_id", "too_many_rooms", "not_joined",
        "rate_limited", "unavailable", "join_rate_limited", "bad_client_token",
        "nick_taken",
    }  # fmt: skip
    assert documented == CODES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["join", "leave", "say", "other"]) | st.text(max_size=5)},
    optional={
        "room": st.text(max_size=70) | json_values,
        "nick": st.text(max_size=40) | json_values,
        "text": st.text(max_size=30) | json_values,
        "client_msg_id": st.text(max_size=70) | json_values,
    },
)


@given(st.text() | st.binary())
def test_any_input_gives_a_frame_or_a_documented_error(raw: str | bytes) -> None:
    try:
        frame = parse_client_frame(raw, RULES)
    except ProtocolError as exc:
        assert exc.code in CODES
    else:
        assert isinstance(frame, Join | Leave | Say)


@given(frame_like)
def test_any_json_object_gives_a_frame_or_a_documented_error(obj: dict[str, object]) -> None:
    try:
        frame = parse_client_frame(json.dumps(obj), RULES)
    except ProtocolError as exc:
        assert exc.code in CODES
        return
    # Accepted frames satisfy every rule.
    assert RULES.room.fullmatch(frame.room)
    if isinstance(frame, Join):
        assert RULES.nick.fullmatch(frame.nick)
    if isinstance(frame, Say):
        assert 0 < len(frame.text.encode()) <= RULES.max_text_bytes
        assert RULES.client_msg_id.fullmatch(frame.client_msg_id)


@given(st.text(min_size=1, max_size=20))
def test_server_frames_roundtrip_any_text(text: str) -> None:
    frame = json.loads(protocol.message("r", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "ada", text, 5))
    assert frame == {
        "type": "message", "room": "r", "id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "nick": "ada", "text": text, "ts": 5,
    }  # fmt: skip
