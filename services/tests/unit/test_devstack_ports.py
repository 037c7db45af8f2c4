"""Listening ports for the local stack and the tests are picked below the ephemeral range."""

from __future__ import annotations

import socket

import pytest

from chatstack.devstack import ports


def test_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    low = ports._ephemeral_low()
    picked = {ports.free_port() for _ in range(20)}
    assert all(ports._LISTEN_PORTS_LOW <= port < low for port in picked)
    assert len(picked) > 1  # random, so parallel runs rarely try the same port
    for port in picked:
        with socket.socket() as sock:
            sock.bind((ports.LOOPBACK, port))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind((ports.LOOPBACK, ports.free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        tries = iter([taken, taken, taken + 1 if taken + 1 < ports._ephemeral_low() else taken - 1])
        monkeypatch.setattr(ports.random, "randint", lambda _low, _high: next(tries))
        assert ports.free_port() != taken
