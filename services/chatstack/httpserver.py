"""tornado's HTTPServer with the guards a public listener needs.

- A request head must arrive within ``header_timeout_s`` (slowloris): tornado applies its
  ``idle_connection_timeout`` to every wait for a request head, the first one included.
- At most ``max_connections`` open connections (HTTP and websocket alike), kept below the
  file descriptor limit: one more is answered ``503`` with ``Connection: close`` (its
  request head is read first, within a short timeout, so the client sees the answer instead
  of a reset) and counted in ``http.refused.capacity``.
- Each connection's stream is a ``LeanIOStream``: idle websockets are counted by the ten
  thousand, and tornado's stream allocated ~1.5 KB of empty queues for each.
- Out of file descriptors anyway (EMFILE/ENFILE: other descriptors, a limit set too low):
  tornado's accept handler would raise on every loop iteration while the listening socket
  stays readable — a busy loop writing a traceback each time. Here accepting pauses for a
  moment instead, with one warning per pause and the ``http.accept.paused`` metric.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
from collections.abc import Callable, Iterable
from typing import Any

import tornado.httpserver
import tornado.web
from tornado.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from .metrics import Metrics

log = logging.getLogger(__name__)

# Errors of accept() that mean "no descriptor (or kernel memory) for a new connection".
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_PAUSE_S = 0.5
# A refused connection gets this long to send its request head before it is just closed.
REFUSE_HEADER_TIMEOUT_S = 2.0
# Refusals in progress beyond this are closed without an answer (they hold descriptors too).
MAX_REFUSING = 64
# Connections accepted in one readiness event before other callbacks run (tornado's choice).
_ACCEPT_BATCH = 128


class _ShortQueue(list[Any]):
    """The part of deque's API that tornado's IOStream uses, on a list. An empty deque
    allocates a 64-slot block up front (760 bytes; an empty list is 56); a stream's write
    queues are short (the gateway closes a client whose unsent output passes
    limits.max_unsent_*), so popleft's copy of the rest costs nothing measurable."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class LeanIOStream(IOStream):
    """tornado's IOStream with its two write queues on lists (``_ShortQueue``), and the
    server's open-connection count kept by ``close`` itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_futures = _ShortQueue()  # type: ignore[assignment]
        self._write_buffer._buffers = _ShortQueue()  # type: ignore[assignment]
        self.counted_by: GuardedHTTPServer | None = None

    def close(self, exc_info: Any = False) -> None:
        # Every way a stream ends (EOF, error, either side closing) goes through close():
        # the stream's single close callback belongs to whoever reads it (HTTP, then the
        # websocket), so it cannot be the hook.
        if self.counted_by is not None:
            self.counted_by.stream_closed(self)
            self.counted_by = None
        super().close(exc_info)


class _Refuse(tornado.web.RequestHandler):
    """The one answer to a connection over the cap."""

    def prepare(self) -> None:
        self.clear_header("Server")
        self.set_status(503)
        self.set_header("Retry-After", "5")
        self.set_header("Cache-Control", "no-store")
        self.finish({"error": {"code": "over_capacity", "detail": "too many connections"}})


def _refusing_app() -> tornado.web.Application:
    # No access log: a flood of refusals must not become a flood of log lines.
    return tornado.web.Application([(r".*", _Refuse)], log_function=lambda handler: None)


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    # tornado's HTTPServer is a Configurable: its constructor arguments go to initialize().
    def initialize(  # type: ignore[override]
        self,
        app: tornado.web.Application,
        *,
        xheaders: bool,
        max_connections: int,
        header_timeout_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        super().initialize(app, xheaders=xheaders, idle_connection_timeout=header_timeout_s)
        self.max_connections = max_connections
        self.metrics = metrics or Metrics()
        self._streams: set[IOStream] = set()
        self._refusing: set[IOStream] = set()
        self._refuse_app = _refusing_app()
        self._refuse_params = HTTP1ConnectionParameters(
            header_timeout=min(header_timeout_s, REFUSE_HEADER_TIMEOUT_S),
            max_header_size=16384,
            no_keep_alive=True,
        )
        self.refused = 0
        self.accept_pauses = 0
        self.closed = 0  # connections that were counted and have closed (a running total)

    # --- counting connections ------------------------------------------------------------

    def open_connections(self) -> int:
        """Connections still open (a websocket keeps the stream of its handshake)."""
        return len(self._streams)

    def stream_closed(self, stream: IOStream) -> None:
        self._streams.discard(stream)
        self.closed += 1

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        if len(self._streams) >= self.max_connections:
            self._refuse(stream, address)
            return
        if isinstance(stream, LeanIOStream):
            self._streams.add(stream)
            stream.counted_by = self
        super().handle_stream(stream, address)

    def _handle_connection(self, connection: socket.socket, address: Any) -> None:
        # tornado's TCPServer._handle_connection without its TLS branch (this server speaks
        # plain HTTP: TLS is nginx's), with a LeanIOStream.
        try:
            stream = LeanIOStream(
                connection,
                max_buffer_size=self.max_buffer_size,
                read_chunk_size=self.read_chunk_size,
            )
            self.handle_stream(stream, address)
        except Exception:
            log.exception("error in connection callback", extra={"event": "http.accept_error"})

    def _refuse(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        self.refused += 1
        self.metrics.incr("http.refused.capacity")
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning(
                "connection limit reached (%d): refusing with 503 (%d so far)",
                self.max_connections,
                self.refused,
                extra={"event": "http.over_capacity"},
            )
        # Only up to MAX_REFUSING of these: sweeping them is cheap.
        self._refusing = {s for s in self._refusing if not s.closed()}
        if len(self._refusing) >= MAX_REFUSING:
            stream.close()
            return
        self._refusing.add(stream)
        HTTP1ServerConnection(stream, self._refuse_params, None).start_serving(self._refuse_app)

    # --- accepting -----------------------------------------------------------------------

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Callable[[], None]:
        """Like tornado.netutil.add_accept_handler, but pausing when out of descriptors."""
        loop = IOLoop.current()
        state = {"removed": False, "paused": False}

        def resume() -> None:
            if not state["removed"]:
                state["paused"] = False
                loop.add_handler(sock, on_readable, IOLoop.READ)

        def on_readable(fd: Any, events: int) -> None:
            for _ in range(_ACCEPT_BATCH):
                if state["removed"] or state["paused"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in _OUT_OF_DESCRIPTORS:
                        raise
                    self._pause(loop, sock, exc, resume)
                    state["paused"] = True
                    return
                self._handle_connection(connection, address)

        def remove() -> None:
            state["removed"] = True
            if not state["paused"]:
                loop.remove_handler(sock)

        loop.add_handler(sock, on_readable, IOLoop.READ)
        return remove

    def _pause(
        self, loop: IOLoop, sock: socket.socket, exc: OSError, resume: Callable[[], None]
    ) -> None:
        self.accept_pauses += 1
        self.metrics.incr("http.accept.paused")
        log.warning(
            "out of file descriptors (%s, %d open connections): not accepting for %.1f s",
            exc.strerror,
            len(self._streams),
            ACCEPT_PAUSE_S,
            extra={"event": "http.accept_paused"},
        )
        loop.remove_handler(sock)
        loop.call_later(ACCEPT_PAUSE_S, resume)


def ensure_descriptors(max_connections: int, wanted: int) -> None:
    """Raise the soft RLIMIT_NOFILE to ``wanted`` (what ``max_connections`` needs,
    chatstack.capacity.service_nofile) if the hard limit allows; otherwise say once at start
    that the cap cannot be reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "file descriptor limit %d is below the %d that http.max_connections %d needs"
            " (+ contract connections.fd_reserve): raise it (systemd LimitNOFILE, ulimit -n)"
            " or lower http.max_connections",
            soft,
            wanted,
            max_connections,
            extra={"event": "config.fd_limit"},
        )
