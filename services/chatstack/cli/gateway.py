"""chat-gateway: the websocket gateway on RabbitMQ."""

from __future__ import annotations

import argparse
import logging

from ..broker.rabbitmq import RabbitGatewayBroker
from ..config import Config
from ..gateway.core import Gateway
from ..metrics import Metrics
from ..runtime import collect_long_lived, listen, serve_until_signal, stop_on_signals
from ..sdnotify import Readiness
from ..web.app import make_gateway_app
from .common import config_argument, load_or_exit, run

log = logging.getLogger(__name__)


async def serve(config: Config) -> None:
    stop = stop_on_signals()
    metrics = Metrics(config.statsd)
    gateway = Gateway(config, RabbitGatewayBroker(config.broker), metrics)
    server = listen(make_gateway_app(config, gateway), config.http, metrics)
    readiness = Readiness()
    gateway.broker.add_ready_listener(
        lambda ready: readiness.changed(ready, "broker connected" if ready else "broker lost")
    )
    await gateway.start()
    collect_long_lived(server, metrics)
    log.info(
        "chat-gateway listening on %s:%d",
        config.http.host,
        config.http.port,
        extra={"event": "listening"},
    )
    await serve_until_signal(stop, [server], gateway.drain, config.http.shutdown_timeout_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chat-gateway", description=__doc__)
    config_argument(parser)
    args = parser.parse_args(argv)
    run(load_or_exit("gateway", args.config), serve)
