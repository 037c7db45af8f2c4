"""`make stack` (chatstack.devstack up): every port checked before anything starts, and one
line per change of a service's state instead of a warning every check."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chatstack.devstack import ports
from chatstack.devstack.__main__ import StateChanges
from chatstack.devstack.stack import Stack, StackPorts


def test_a_killed_service_is_reported_once_per_change() -> None:
    watch = StateChanges()
    lines = [watch.line("gw-1", running, "gw-1.log") for running in
             (True, True, False, False, False, True, True, False)]  # fmt: skip
    assert lines == [
        None, None, "warning: gw-1 is not running (see gw-1.log)", None, None,
        "gw-1 is running again", None, "warning: gw-1 is not running (see gw-1.log)",
    ]  # fmt: skip
    assert watch.line("history", True, "h.log") is None  # each service on its own


def test_every_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as gw2, socket.socket() as nginx:
        for sock in (gw2, nginx):
            sock.bind((ports.LOOPBACK, 0))
            sock.listen()
        free = StackPorts.free()
        taken = StackPorts(
            http=nginx.getsockname()[1],
            gateways=(free.gateways[0], gw2.getsockname()[1]),
            history=free.history,
            amqps=free.amqps,
        )
        stack = Stack(tmp_path / "state", stack_ports=taken)
        with pytest.raises(RuntimeError) as raised:
            stack.check_ports()
        message = str(raised.value)
        assert f"nginx 127.0.0.1:{taken.http}" in message
        assert f"chat-gateway gw-2 127.0.0.1:{taken.gateways[1]}" in message
        assert "gw-1" not in message and "history" not in message
        assert not (tmp_path / "state").exists()  # nothing created, nothing started
        Stack(tmp_path / "other", stack_ports=free).check_ports()  # all free: no error
