"""``make stack`` passes CHATSTACK_* config variables to the services it starts (the bench
lifts per-connection limits this way), refuses those for keys the stack wires itself, and
ignores test switches that name no config key."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from chatstack.devstack import ports, services
from chatstack.devstack.stack import OVERRIDABLE_KEYS, Stack
from tornado.websocket import websocket_connect

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

RATE = "123.5"


def gateway_document(stack: Stack, port: int) -> dict[str, object]:
    return services.render_config(
        stack.contract, "gateway", instance="gw-env", port=port, broker=stack.rabbitmq
    )


def test_owned_keys_are_refused_and_switches_ignored(stack: Stack) -> None:
    owned = services.config_keys(gateway_document(stack, 1)) - OVERRIDABLE_KEYS
    passed, ignored = services.environment_overrides(
        {
            "CHATSTACK_LIMITS__BURST": "500",
            "CHATSTACK_LOG__LEVEL": "DEBUG",
            "CHATSTACK_KEEP_STACK_DIR": "1",
            "PATH": "/bin",
        },
        owned,
    )
    assert passed == {"CHATSTACK_LIMITS__BURST": "500", "CHATSTACK_LOG__LEVEL": "DEBUG"}
    assert ignored == ["CHATSTACK_KEEP_STACK_DIR"]
    with pytest.raises(
        ValueError, match="CHATSTACK_HTTP__PORT: the local stack sets http.port"
    ):
        services.environment_overrides({"CHATSTACK_HTTP__PORT": "1"}, owned)


async def welcome_limits(port: int) -> dict[str, object]:
    conn = await websocket_connect(f"ws://{ports.LOOPBACK}:{port}/ws")
    welcome = json.loads(str(await conn.read_message()))
    conn.close()
    limits: dict[str, object] = welcome["limits"]
    return limits


def test_a_passed_variable_reaches_the_gateway(stack: Stack) -> None:
    port = ports.free_port()
    document = gateway_document(stack, port)
    owned = services.config_keys(document) - OVERRIDABLE_KEYS
    overrides, _ = services.environment_overrides(
        {"CHATSTACK_LIMITS__RATE_PER_S": RATE}, owned
    )
    workdir = Path(tempfile.mkdtemp(prefix="chatstack-env-gw-"))
    gateway = services.Service("gateway", "gw-env", port, workdir, document, overrides)
    gateway.start()
    try:
        gateway.wait_status("/readyz", 200)
        assert asyncio.run(welcome_limits(port))["rate_per_s"] == float(RATE)
    finally:
        gateway.stop()
        shutil.rmtree(workdir, ignore_errors=True)
