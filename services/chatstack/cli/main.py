"""chatstack: the embedded default and operator helpers.

chatstack serve          gateway + history + in-memory broker + the browser client, one port
chatstack check-config   load a service's config and report the first problem (exit 2)
"""

from __future__ import annotations

import argparse
import logging

from ..broker.memory import MemoryHub
from ..config import Config
from ..gateway.core import Gateway
from ..history.service import HistoryService
from ..history.store import HistoryStore
from ..metrics import Metrics
from ..runtime import collect_long_lived, listen, serve_until_signal, stop_on_signals
from ..sdnotify import Readiness
from ..web.app import make_embedded_app
from .common import config_argument, load_or_exit, run

log = logging.getLogger(__name__)


async def serve(config: Config) -> None:
    stop = stop_on_signals()
    metrics = Metrics(config.statsd)
    hub = MemoryHub()
    gateway = Gateway(config, hub.gateway(), metrics)
    history = HistoryService(
        HistoryStore(config.history_database), hub.history(), metrics, config.instance
    )
    app = make_embedded_app(config, gateway, history, metrics)
    server = listen(app, config.http, metrics)
    await history.start()
    await gateway.start()
    collect_long_lived(server, metrics)
    Readiness().changed(True, "serving")
    url = f"http://{config.http.host}:{config.http.port}/"
    log.info(
        "chatstack serving the chat on %s (history in %s)",
        url,
        config.history_database,
        extra={"event": "listening", "url": url},
    )

    async def drain(timeout: float) -> None:
        await gateway.drain(timeout)
        await history.close()

    await serve_until_signal(stop, [server], drain, config.http.shutdown_timeout_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="chatstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the embedded default")
    config_argument(serve_parser)
    serve_parser.add_argument("--host", help="listen address (overrides http.host)")
    serve_parser.add_argument("--port", help="listen port (overrides http.port)")
    check = commands.add_parser("check-config", help="check a service config and exit")
    check.add_argument("role", choices=("gateway", "history", "serve"))
    config_argument(check)
    args = parser.parse_args(argv)

    if args.command == "check-config":
        config = load_or_exit(args.role, args.config)
        print(f"{args.role} config OK ({config.source or 'defaults'})")  # noqa: T201
        return
    # Flags are single-key overrides, checked like any other value.
    overrides = {}
    if args.host is not None:
        overrides["http.host"] = (args.host, "--host")
    if args.port is not None:
        overrides["http.port"] = (args.port, "--port")
    config = load_or_exit("serve", args.config, overrides)
    where = f"http://{config.http.host}:{config.http.port}/"
    # Before logging starts: the one line a person running `make run` needs.
    print(f"chatstack: open {where} in two browser tabs (Ctrl-C stops)", flush=True)  # noqa: T201
    run(config, serve)
