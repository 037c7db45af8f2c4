"""chat-history: stores every chat message from RabbitMQ and serves the history API.

chat-history [serve]              the service (default)
chat-history replay-dead-letters  store what the dead-letter queue holds, once, and exit
                                  (0: all stored; 1: some still not storable, left queued)
"""

from __future__ import annotations

import argparse
import logging

import pika.exceptions

from ..broker.rabbitmq import RabbitHistoryBroker
from ..config import Config
from ..history.replay import replay_dead_letters
from ..history.service import HistoryService
from ..history.store import HistoryStore, StoreUnusable
from ..logs import setup_logging
from ..metrics import Metrics
from ..runtime import listen, serve_until_signal, stop_on_signals
from ..sdnotify import Readiness
from ..web.app import make_history_app
from .common import config_argument, load_or_exit, run, store_unusable

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
    history.add_ready_listener(
        lambda ready: readiness.changed(ready, "ready" if ready else history_problem(history))
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


def history_problem(history: HistoryService) -> str:
    return history.fault or ("broker lost" if not history.broker.ready else "store not open")


def replay(config: Config) -> int:
    setup_logging(config.instance, config.log_level)
    try:
        result = replay_dead_letters(config, Metrics(config.statsd))
    except StoreUnusable as exc:
        store_unusable(exc)
    except (pika.exceptions.AMQPError, OSError) as exc:
        log.error(
            "replay failed, nothing more was taken from the dead-letter queue: %s",
            str(exc) or repr(exc),
            extra={"event": "history.replay_failed"},
        )
        return 1
    return 1 if result.left else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="chat-history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", nargs="?", choices=("serve", "replay-dead-letters"), default="serve"
    )
    config_argument(parser)
    args = parser.parse_args(argv)
    config = load_or_exit("history", args.config)
    if args.command == "replay-dead-letters":
        raise SystemExit(replay(config))
    run(config, serve)
