"""A gateway cut off from the broker refuses new websockets with 503 (nginx then tries
another gateway) and, after gateway.failover_after_s, closes its sockets with 1012 so the
clients reconnect elsewhere. The real partition is tests/stack/test_stack_partition.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Client, cluster, get, run

from chatstack.broker.memory import MemoryHub


def test_not_ready_gateway_refuses_handshakes_and_sends_clients_away(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        async with cluster(
            tmp_path, [hub.gateway()], hub.history(), gateway__failover_after_s="0.3"
        ) as c:
            (served,) = c.gateway_served
            ada = await Client.connect(served.ws)
            await ada.join("lobby", "ada")
            await c.gateways[0].broker.close()  # the broker connection is gone
            assert await ada.wait_closed() == 1012
            refused = await get(served.ws.replace("ws://", "http://"))
            assert refused.code == 503
            with pytest.raises(Exception, match="503"):
                await Client.connect(served.ws)

    run(scenario())
