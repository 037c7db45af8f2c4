"""The node settings of contract ``[rabbitmq_conf]`` are in force on a real RabbitMQ.

The local stack and the NixOS module write these keys into rabbitmq.conf as they are. A key
that Debian's RabbitMQ 3.10 does not know, or a value its schema refuses, stops the broker at
boot, so the session broker of these tests would not start; beyond starting, the node must
run with the value: the quorum queues' WAL size is read back from the Ra system that applies
it (modules/README.md, "RabbitMQ memory").
"""

from __future__ import annotations

import pytest

from chatstack.devstack import contract as contract_mod
from chatstack.devstack import rabbitmq as rmq

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SETTINGS = contract_mod.load()["rabbitmq_conf"]
# RabbitMQ's own default (3.10 and 4.x): reading it back would not show the setting applied.
RABBITMQ_DEFAULT_WAL_BYTES = 512 * 1024 * 1024


def test_rendered_rabbitmq_conf_carries_the_contract_settings(rabbitmq: rmq.Broker) -> None:
    lines = (rabbitmq.node_dir / "rabbitmq.conf").read_text().splitlines()
    expected = [f"{key} = {value}" for key, value in SETTINGS.items()]
    assert expected, "contract [rabbitmq_conf] is empty: nothing to check"
    assert [line for line in expected if line not in lines] == []


def test_the_quorum_queue_wal_size_is_in_force(rabbitmq: rmq.Broker) -> None:
    wanted = SETTINGS["raft.wal_max_size_bytes"]
    assert wanted != RABBITMQ_DEFAULT_WAL_BYTES
    # What the quorum queues' Ra system runs with, not only the application environment.
    found = rabbitmq.ctl(
        "eval", "maps:get(wal_max_size_bytes, ra_system:fetch(quorum_queues))."
    ).strip()
    assert found == str(wanted)
