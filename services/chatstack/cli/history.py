"""chat-history: stores every chat message from RabbitMQ and serves the history API."""

from __future__ import annotations

import argparse
import logging

from ..broker.rabbitmq import RabbitHistoryBroker
from ..config import Config
from ..history.service import HistoryService
from ..history.store import HistoryStore
from ..metrics import Metrics
from ..runtime import listen, serve_until_signal, stop_on_signals
from ..sdnotify import Readiness
from ..web.app import make_history_app
from .common import config_argument, load_or_exit, run

log = logging.getLogger(__name__)


async def serve(config: Config) -> None:
    stop = stop_on_signals()
    metrics = Metrics(config.statsd)
    history = HistoryService(
        HistoryStore(config.history_database),
        RabbitHistoryBroker(config.broker),
        metrics,
        config.instance,
    )
    server = listen(make_history_app(config, history, metrics), config.http, metrics)
    readiness = Readiness()
    history.broker.add_ready_listener(
        lambda ready: readiness.changed(
            ready and history.store.is_open, "broker connected" if ready else "broker lost"
        )
    )
    await history.start()
    log.info(
        "chat-history listening on %s:%d (database %s)",
        config.http.host,
        config.http.port,
        config.history_database,
        extra={"event": "listening"},
    )

    async def drain(timeout: float) -> None:
        await history.close()

    await serve_until_signal(stop, [server], drain, config.http.shutdown_timeout_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chat-history", description=__doc__)
    config_argument(parser)
    args = parser.parse_args(argv)
    run(load_or_exit("history", args.config), serve)
