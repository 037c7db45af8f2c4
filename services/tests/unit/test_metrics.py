import socket

import pytest

from chatstack.config import StatsdConfig
from chatstack.metrics import Metrics


def test_undeclared_names_and_wrong_types_are_refused() -> None:
    metrics = Metrics()  # disabled, still checked
    with pytest.raises(KeyError):
        metrics.incr("gateway.messages.recieved")
    with pytest.raises(TypeError):
        metrics.incr("gateway.connections.{instance}", instance="gw")  # a gauge
    metrics.incr("gateway.errors.{code}", code="bad_json")


def test_statsd_datagrams_reach_a_real_udp_listener() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2)
    port = listener.getsockname()[1]
    metrics = Metrics(StatsdConfig(host="127.0.0.1", port=port, prefix="chatstack"))
    metrics.incr("gateway.errors.{code}", code="rate_limited")
    metrics.gauge("gateway.connections.{instance}", 3, instance="app-1.example:8101")
    metrics.timing("gateway.publish.confirm_ms", 1.5)
    received = {listener.recv(512).decode() for _ in range(3)}
    listener.close()
    assert received == {
        "chatstack.gateway.errors.rate_limited:1|c",
        "chatstack.gateway.connections.app-1_example_8101:3|g",
        "chatstack.gateway.publish.confirm_ms:1.500000|ms",
    }
