"""Builds the tornado applications of each role from their parts (no global state)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import tornado.web

from .. import contract
from ..config import Config
from ..gateway.core import Gateway
from ..gateway.handler import ChatSocketHandler
from ..history.api import MessagesHandler, messages_route
from ..history.service import HistoryService
from ..metrics import Metrics
from .access_log import log_request
from .guards import SecurityHeaders, host_checked
from .health import HealthHandler, ReadyHandler


def client_dir(config: Config) -> Path:
    """The static browser client: configured, else the copy shipped in the package."""
    if config.http.static_dir is not None:
        return config.http.static_dir
    return Path(str(resources.files("chatstack").joinpath("chat_client_demo")))


class ClientHandler(tornado.web.StaticFileHandler):
    # The security headers are on every response (guards.SecurityHeaders).
    async def get(self, path: str, include_body: bool = True) -> None:
        # A NUL or other control character can never name a file: 400 with a code instead
        # of the ValueError ("embedded null byte") tornado would turn into a 500.
        if any(ord(c) < 0x20 or c == "\x7f" for c in path):
            self.set_status(400)
            self.set_header("Cache-Control", "no-store")
            self.finish({"error": {"code": "bad_path", "detail": "control character in path"}})
            return
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


def _application(config: Config, routes: list[Any], metrics: Metrics) -> tornado.web.Application:
    return tornado.web.Application(
        host_checked(routes, config.http.allowed_hosts, metrics),
        transforms=[SecurityHeaders],
        **_settings(config),
    )


def _settings(config: Config) -> dict[str, Any]:
    return {
        # Pings are the gateway's (gateway/keepalive.py), not a task per socket in tornado.
        "websocket_ping_interval": 0,
        "websocket_max_message_size": config.limits.max_frame_bytes,
        "compress_response": False,
        "log_function": log_request,
        "debug": False,
    }


def _gateway_routes(gateway: Gateway) -> list[Any]:
    return [(contract.route("websocket"), ChatSocketHandler, {"gateway": gateway})]


def _history_routes(history: HistoryService, metrics: Metrics) -> list[Any]:
    handler_args = {"store": history.store, "metrics": metrics, "live": lambda: history.caught_up}
    return [(messages_route(), MessagesHandler, handler_args)]


def _health_routes(
    instance: str, checks: dict[str, Any], history: HistoryService | None = None
) -> list[Any]:
    ready_args: dict[str, Any] = {"instance": instance, "checks": checks}
    if history is not None:
        ready_args["problems"] = lambda: [history.fault] if history.fault else []
    return [
        (contract.route("healthz"), HealthHandler, {"instance": instance}),
        (contract.route("readyz"), ReadyHandler, ready_args),
    ]


def make_gateway_app(config: Config, gateway: Gateway) -> tornado.web.Application:
    checks = {
        "broker not connected": lambda: gateway.broker.ready,
        "shutting down": lambda: not gateway.draining,
    }
    routes = _gateway_routes(gateway) + _health_routes(config.instance, checks)
    return _application(config, routes, gateway.metrics)


def make_history_app(
    config: Config, history: HistoryService, metrics: Metrics
) -> tornado.web.Application:
    checks = {
        "broker not connected": lambda: history.broker.ready,
        "store not open": lambda: history.store.is_open,
    }
    routes = _history_routes(history, metrics) + _health_routes(config.instance, checks, history)
    return _application(config, routes, metrics)


def make_embedded_app(
    config: Config, gateway: Gateway, history: HistoryService, metrics: Metrics
) -> tornado.web.Application:
    """Everything on one port: what nginx assembles from several processes in production."""
    checks = {
        "broker not connected": lambda: gateway.broker.ready and history.broker.ready,
        "store not open": lambda: history.store.is_open,
        "shutting down": lambda: not gateway.draining,
    }
    static = client_dir(config)
    routes = (
        _gateway_routes(gateway)
        + _history_routes(history, metrics)
        + _health_routes(config.instance, checks, history)
        + [
            (
                r"/(.*)",
                ClientHandler,
                {"path": str(static), "default_filename": "index.html"},
            )
        ]
    )
    return _application(config, routes, metrics)
