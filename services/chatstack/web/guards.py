"""What every response of every service carries, and which Host names it answers.

- The security headers of contract ``[proxy.headers]`` go on every response (pages, API,
  health checks, errors, the websocket handshake): the embedded server is the whole origin
  and must send what nginx sends in production. tornado's ``Server: TornadoServer/<version>``
  banner is removed.
- A request for a Host name the server does not serve is answered ``421`` (DNS rebinding:
  a page on evil.example whose name now points to 127.0.0.1 reaches the embedded server with
  ``Host: evil.example`` and a matching ``Origin``). IP literals cannot be rebound and
  ``localhost`` never leaves the machine, so both are always accepted.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import tornado.httputil
import tornado.routing
import tornado.web

from .. import contract
from ..metrics import Metrics

log = logging.getLogger(__name__)


def security_headers() -> dict[str, str]:
    headers: dict[str, str] = contract.section("proxy")["headers"]
    return headers


class SecurityHeaders(tornado.web.OutputTransform):
    """tornado output transform: the contract's header set, no version banner."""

    def __init__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        super().__init__(request)
        self._headers = security_headers()

    def transform_first_chunk(
        self,
        status_code: int,
        headers: tornado.httputil.HTTPHeaders,
        chunk: bytes,
        finishing: bool,
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        if "Server" in headers:
            del headers["Server"]
        for name, value in self._headers.items():
            headers[name] = value
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        return chunk


def host_allowed(host_name: str, allowed: tuple[str, ...]) -> bool:
    name = host_name.lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost" or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHost(tornado.routing.Matcher):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed

    def match(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any] | None:
        return {} if host_allowed(request.host_name, self.allowed) else None


class UnknownHostHandler(tornado.web.RequestHandler):
    """Reached when no route matched: a foreign Host (421), or a known one (404)."""

    def initialize(self, metrics: Metrics, allowed: tuple[str, ...]) -> None:
        self.metrics = metrics
        self.allowed = allowed

    def prepare(self) -> None:
        if host_allowed(self.request.host_name, self.allowed):
            raise tornado.web.HTTPError(404)
        self.metrics.incr("http.refused.host")
        log.debug(
            "refused unknown host %s",
            self.request.host_name[:200],
            extra={"event": "http.unknown_host"},
        )
        self.set_status(int(contract.section("proxy")["unknown_host_status"]))
        self.set_header("Cache-Control", "no-store")
        self.finish(
            {"error": {"code": "unknown_host", "detail": "this server does not serve that name"}}
        )


def host_checked(routes: list[Any], allowed: tuple[str, ...] | None, metrics: Metrics) -> list[Any]:
    """``routes`` for the allowed Host names only (``None``: any host), else 421."""
    if allowed is None:
        return routes
    return [
        tornado.routing.Rule(AllowedHost(allowed), routes),
        tornado.routing.Rule(
            tornado.routing.AnyMatches(),
            [(r".*", UnknownHostHandler, {"metrics": metrics, "allowed": allowed})],
        ),
    ]
