"""tornado's access log, made cheap and honest about levels.

- The request line is cut to ``MAX_URI_CHARS`` (a 5,000-digit query string must not cost
  5 KB of log per request) and control characters are escaped.
- ``/readyz`` answering 503 is a state the service reports on purpose (a load balancer
  polls it every few seconds), not a server error: INFO, not ERROR. The state change itself
  is logged once by the service (``broker.not_ready``, ``history.store_failed``).
- Other 5xx are ERROR, 4xx WARNING (client mistakes, one short line, never a traceback),
  the rest INFO.
"""

from __future__ import annotations

import logging

import tornado.web

from .. import contract

MAX_URI_CHARS = 200

access_log = logging.getLogger("tornado.access")


def short_uri(uri: str) -> str:
    text = (
        uri
        if len(uri) <= MAX_URI_CHARS
        else uri[:MAX_URI_CHARS] + f"...(+{len(uri) - MAX_URI_CHARS})"
    )
    return text.encode("unicode_escape").decode("ascii")


def log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    request = handler.request
    if status == 503 and request.path == contract.route("readyz"):
        level = logging.INFO
    elif status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    else:
        level = logging.INFO
    if not access_log.isEnabledFor(level):
        return
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        short_uri(request.uri or ""),
        request.remote_ip,
        1000.0 * request.request_time(),
        extra={"event": "http.access", "status": status},
    )
