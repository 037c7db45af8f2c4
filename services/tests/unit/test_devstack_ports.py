"""Listening ports for the local stack and the tests are picked below the ephemeral range,
where the kernel never takes the source port of an outgoing connection."""

from __future__ import annotations

import socket

import pytest

from chatstack.devstack import ports


def test_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    start = ports._ephemeral_start()
    picked = {ports.free_port() for _ in range(20)}
    assert all(ports.PICK_FROM <= port < start for port in picked)
    assert len(picked) > 1  # random, so parallel runs rarely try the same port
    for port in picked:
        with socket.socket() as sock:
            sock.bind((ports.LOOPBACK, port))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind((ports.LOOPBACK, ports.free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        other = taken + 1 if taken + 1 < ports._ephemeral_start() else taken - 1
        monkeypatch.setattr(ports.random, "sample", lambda _range, _k: [taken, taken, other])
        assert ports.free_port() == other
