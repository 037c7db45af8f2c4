"""nginx for the local stack: the config rendered from the contract, and the nginx process.

One origin (DESIGN §1): the static client at ``routes.client``, the websocket at
``routes.websocket`` load-balanced over the gateways, ``routes.api_prefix`` proxied to
history. Every name and number comes from contract.toml (``[routes]``, ``[proxy]``,
``[proxy.headers]``, ``[websocket]``, and ``[connections]`` through chatstack.capacity);
this module only decides nginx syntax.

Security headers are added at the ``server`` level only: nginx drops inherited
``add_header``s in any block that has its own, so no location here adds one. The same names
are hidden from upstream responses, so a header is never sent twice with two values.
No CORS header is ever added.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from chatstack import capacity
from chatstack.devstack import ports
from chatstack.devstack.contract import Contract
from chatstack.devstack.procs import Child

log = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install -y nginx"

# MIME types of what the client directory holds. ES modules need a JavaScript type: browsers
# refuse a module served as application/octet-stream.
MIME_TYPES = {
    "text/html": "html htm",
    "text/css": "css",
    "text/javascript": "js mjs",
    "application/json": "json",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/x-icon": "ico",
    "text/plain": "txt",
}


# Host names the stack's origin answers (it listens on loopback); others get a 421.
STACK_HOST_NAMES = ("localhost", "127.0.0.1")


def client_dir() -> Path:
    """The browser client shipped inside the package (what nginx serves at routes.client)."""
    return Path(str(resources.files("chatstack").joinpath("chat_client_demo")))


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Workers:
    """How this machine's nginx carries its capacity: worker processes, and each one's
    worker_connections and worker_rlimit_nofile."""

    processes: int
    connections: int
    nofile: int


# Several workers each listen on their own socket (`listen ... reuseport`) and the kernel
# spreads new connections over them by a hash of the addresses: evenly on average, not
# exactly, so a worker is sized for its share with a quarter more room. (accept_mutex was
# measured to fill one worker to "worker_connections are not enough" while others had room.)
SPREAD_SHARE = 4 / 5


def workers(
    contract: Contract, gateways: int, ceiling: int | None, *, spread: bool = False
) -> Workers:
    """The workers that carry the contract's capacity for ``gateways`` gateways
    (chatstack.capacity) under ``ceiling``, the hard RLIMIT_NOFILE nginx inherits (None:
    none). One worker, as the NixOS load balancer, when it may hold worker_rlimit_nofile
    descriptors. Below that (a container without CAP_SYS_RESOURCE cannot raise it), one
    worker at the ceiling, so nginx holds fewer websockets than the contract's (the stack
    says so); or with ``spread`` as many workers at the ceiling as hold all of them, each
    listening on a socket of its own (``reuseport``)."""
    connections = contract["connections"]
    sized = capacity.proxy(connections, gateways)
    if ceiling is None or ceiling >= sized.worker_rlimit_nofile:
        return Workers(1, sized.worker_connections, sized.worker_rlimit_nofile)
    reserve = min(int(connections["fd_reserve"]), ceiling // 4)
    each = ceiling - reserve
    if not spread:
        return Workers(1, each, ceiling)
    processes = math.ceil(sized.worker_connections / (each * SPREAD_SHARE))
    return Workers(processes, each, ceiling)


@dataclass(frozen=True)
class Site:
    """What the rendered config needs besides the contract: where things run on this machine."""

    listen: Upstream
    gateways: tuple[Upstream, ...]
    history: Upstream
    static_dir: Path
    prefix: Path  # nginx's own directory: pid, logs, temp files
    # None: one worker with the contract's capacity (the NixOS load balancer's shape).
    workers: Workers | None = None

    @property
    def conf_file(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"


def _quoted(name: str, value: str) -> str:
    # A header value is one nginx string: no quote or line break can be allowed through.
    if any(ch in value for ch in '"\\\r\n') or not value.strip():
        raise ValueError(f"contract proxy.headers.{name}: unusable header value {value!r}")
    return f'"{value}"'


def _location_path(contract: Contract, route: str) -> str:
    path = str(contract["routes"][route])
    if not path.startswith("/") or any(ch.isspace() or ch in "{};\"'" for ch in path):
        raise ValueError(f"contract routes.{route}: {path!r} is not a plain absolute path")
    return path


def render(contract: Contract, site: Site) -> str:
    """The whole nginx.conf as text (pure: no file is read or written)."""
    proxy = contract["proxy"]
    ws_timeout = int(proxy["websocket_timeout_s"])
    ping = float(contract["websocket"]["ping_interval_s"])
    if ws_timeout <= ping:
        # nginx would cut every idle socket between two pings.
        raise ValueError(
            f"contract proxy.websocket_timeout_s = {ws_timeout}: must exceed"
            f" websocket.ping_interval_s = {ping}"
        )
    if not site.gateways:
        raise ValueError("nginx: at least one gateway upstream is needed")
    fails = f"max_fails={int(proxy['max_fails'])} fail_timeout={int(proxy['fail_timeout_s'])}s"
    gateways = "\n".join(f"        server {gw} {fails};" for gw in site.gateways)
    headers = contract["proxy"]["headers"]
    add_headers = "\n".join(
        f"        add_header {name} {_quoted(name, value)} always;"
        for name, value in headers.items()
    )
    hide_headers = "\n".join(f"        proxy_hide_header {name};" for name in headers)
    types = "\n".join(f"        {mime} {exts};" for mime, exts in MIME_TYPES.items())
    client = _location_path(contract, "client")
    websocket = _location_path(contract, "websocket")
    api = _location_path(contract, "api_prefix")
    healthz = _location_path(contract, "healthz")
    readyz = _location_path(contract, "readyz")
    tmp = site.prefix / "tmp"
    sized = capacity.proxy(contract["connections"], len(site.gateways))
    per_gateway = int(contract["connections"]["websockets_per_gateway"])
    shape = site.workers or workers(contract, len(site.gateways), None)
    usable = shape.connections * (shape.processes * SPREAD_SHARE if shape.processes > 1 else 1)
    if usable >= sized.worker_connections:
        held = f"all of them, in {shape.processes} worker(s)"
    else:
        held = f"~{int(usable) // 2} websockets only (a lower descriptor ceiling)"
    # Several workers: one listening socket each, the kernel spreads connections over them.
    reuseport = " reuseport" if shape.processes > 1 else ""
    per_address = int(contract["connections"]["per_address"])
    zone = proxy["per_address_zone"]
    return f"""\
# Generated by chatstack.devstack.nginx from services/chatstack/contract.toml; do not edit.
# Local production-like stack (DESIGN §1): one origin for the client, /ws and the API.
daemon off;  # the stack holds nginx's master pid and stops it itself
pid {site.prefix / "nginx.pid"};
error_log {site.error_log} info;
# Sized by chatstack.capacity (as the NixOS load balancer): {sized.websockets} websockets,
# {len(site.gateways)} gateways x connections.websockets_per_gateway {per_gateway}, each
# holding a client and a gateway connection: worker_connections {sized.worker_connections},
# worker_rlimit_nofile {sized.worker_rlimit_nofile}. On this machine: {held}.
worker_processes {shape.processes};
worker_rlimit_nofile {shape.nofile};

events {{
    worker_connections {shape.connections};
}}

http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    charset utf-8;
    charset_types text/css text/javascript application/json text/plain;
    server_tokens off;
    access_log {site.access_log};
    client_body_temp_path {tmp / "body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};

    # Websockets per client address (connections.per_address); refusals logged at info only,
    # so a flood does not become a flood of error lines.
    limit_conn_zone $binary_remote_addr zone={zone}:10m;
    limit_conn_status {int(proxy["per_address_status"])};
    limit_conn_log_level info;

    # "Connection: upgrade" only when the client asked for a websocket upgrade.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}

    # Passive failover: a gateway that fails max_fails times is skipped for fail_timeout.
    upstream {proxy["upstream_gateways"]} {{
{gateways}
    }}

    upstream {proxy["upstream_history"]} {{
        server {site.history} {fails};
    }}

    # Any other Host name (DNS rebinding, scanners) is refused here.
    server {{
        listen {site.listen} default_server{reuseport};
        server_name _;
        return {int(proxy["unknown_host_status"])};
    }}

    server {{
        listen {site.listen};
        server_name {" ".join(STACK_HOST_NAMES)};
        root {site.static_dir};
        index index.html;

        # DESIGN §6 security headers, from contract [proxy.headers]: this level only.
{add_headers}
        # The same headers from upstreams are dropped so each is sent once, with nginx's value.
{hide_headers}

        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # A refused or timed-out connect, or a backend answering 502-504 (not ready, draining),
        # goes to the next server: a dead gateway is skipped (as in modules/load-balancer.nix).
        proxy_next_upstream error timeout http_502 http_503 http_504;

        location {client} {{
            try_files $uri $uri/ =404;
        }}

        location = {websocket} {{
            proxy_pass http://{proxy["upstream_gateways"]};
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Long-lived sockets: longer than the gateway's ping interval.
            proxy_read_timeout {ws_timeout}s;
            proxy_send_timeout {ws_timeout}s;
            proxy_buffering off;
            limit_conn {zone} {per_address};
        }}

        location {api} {{
            proxy_pass http://{proxy["upstream_history"]};
        }}

        # Liveness/readiness of the websocket side on the public origin (chat-probe checks
        # them there): answered by a gateway; /readyz is 503 only when no gateway is ready.
        location = {healthz} {{
            proxy_pass http://{proxy["upstream_gateways"]};
        }}

        location = {readyz} {{
            proxy_pass http://{proxy["upstream_gateways"]};
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError(f"nginx not found: install it with `{INSTALL_HINT}`")
    return found


class Nginx:
    """nginx as a plain foreground process with its own prefix, pid file and logs."""

    def __init__(self, contract: Contract, site: Site) -> None:
        self.contract = contract
        self.site = site
        self._child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://{self.site.listen}"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def write_config(self) -> Path:
        for sub in ("logs", "tmp"):
            (self.site.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.site.conf_file.write_text(render(self.contract, self.site))
        return self.site.conf_file

    def _argv(self, *extra: str) -> list[str]:
        # -e: the error log before the config is read (the Debian build defaults to stderr).
        return [
            nginx_binary(),
            "-p", str(self.site.prefix),
            "-c", str(self.site.conf_file),
            "-e", str(self.site.error_log),
            *extra,
        ]  # fmt: skip

    def check(self) -> None:
        """``nginx -t``: a config error names the line instead of a dead process later."""
        result = subprocess.run(self._argv("-t"), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t failed for {self.site.conf_file}:\n{result.stderr}")

    def start(self, timeout: float = 15.0) -> None:
        if not self.site.static_dir.is_dir():
            raise RuntimeError(f"client directory {self.site.static_dir} is missing")
        listen = self.site.listen
        ports.ensure_free(listen.host, listen.port, "nginx")
        self.write_config()
        self.check()
        self._child = Child("nginx", self._argv(), self.site.prefix / "logs" / "console.log")
        self._child.start()
        ports.wait_open(listen.host, listen.port, timeout, "nginx", self._child.alive)
        log.info("nginx ready on %s (log %s)", self.url, self.site.error_log)

    def running(self) -> bool:
        return self._child is not None and self._child.alive()

    def reload(self, settle_s: float = 0.5) -> None:
        """SIGHUP: new workers with fresh upstream state (forgets gateways marked failed)."""
        if self._child is None or self._child.pid is None or not self._child.alive():
            raise RuntimeError("nginx is not running")
        os.kill(self._child.pid, signal.SIGHUP)
        time.sleep(settle_s)  # the master starts new workers right after re-reading the config

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop(10)
