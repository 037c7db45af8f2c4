"""The comparison target: two python-socketio servers (``peer_server.py``) sharing rooms
through RabbitMQ with ``socketio.AsyncAioPikaManager``, behind an nginx of the same worker
settings as the stack's, on the stack's own RabbitMQ (its own vhost and user, AMQPS with the
stack's CA). Started inside a running stack target, so both are measured in one run."""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chatstack.devstack import ports
from chatstack.devstack.nginx import Workers, nginx_binary, workers
from chatstack.devstack.procs import Child
from chatstack.devstack.stack import Stack

from .procstat import process_tree
from .targets import Target

PEER_PYTHON = Path(".tools/bench/bin/python")
SERVER = Path(__file__).with_name("peer_server.py")
VHOST = USER = "socketio-peer"
PATH = "/socket.io/?EIO=4&transport=websocket"


def _nginx_conf(
    prefix: Path,
    listen: int,
    upstreams: list[int],
    contract: dict[str, Any],
    workers: Workers,
) -> str:
    proxy = contract["proxy"]
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstreams)
    return f"""\
worker_processes {workers.processes};
daemon off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
worker_rlimit_nofile {workers.nofile};
events {{ worker_connections {workers.connections}; }}
http {{
    access_log off;
    client_body_temp_path {prefix / "tmp"};
    proxy_temp_path {prefix / "tmp"};
    fastcgi_temp_path {prefix / "tmp"};
    uwsgi_temp_path {prefix / "tmp"};
    scgi_temp_path {prefix / "tmp"};
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream socketio_peers {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{listen};
        location /socket.io/ {{
            proxy_pass http://socketio_peers;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout {proxy["websocket_timeout_s"]}s;
        }}
    }}
}}
"""


class PeerTarget(Target):
    def __init__(self, stack: Stack, state_dir: Path, servers: int = 2) -> None:
        if not PEER_PYTHON.exists():
            raise RuntimeError(
                "the peer needs `make bench-tools` (tools/chatbench/README.md)"
            )
        broker = stack.rabbitmq
        password = secrets.token_hex(16)
        try:
            broker.ctl("add_user", USER, password)
        except RuntimeError:  # left from an earlier run: same user, new password
            broker.ctl("change_password", USER, password)
        try:
            broker.ctl("add_vhost", VHOST)
        except RuntimeError:
            pass
        broker.ctl("set_permissions", "-p", VHOST, USER, ".*", ".*", ".*")
        url = (
            f"amqps://{USER}:{password}@{broker.host}:{broker.amqps_port}/{quote(VHOST)}"
            f"?cafile={quote(str(broker.ca_file))}"
        )
        state_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        server_ports = [ports.free_port() for _ in range(servers)]
        listen = ports.free_port()
        super().__init__("peer", ports.LOOPBACK, listen)
        self.path = PATH
        self.dialect = "socketio"
        try:
            for n, port in enumerate(server_ports, start=1):
                child = Child(
                    f"peer-{n}",
                    [str(PEER_PYTHON), str(SERVER), "--port", str(port), "--amqp-url", url,
                     "--instance", f"peer-{n}"],
                    state_dir / f"peer-{n}.log",
                )  # fmt: skip
                child.start()
                self.children.append(child)
            for port in server_ports:
                _wait_http(
                    f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
                )
            prefix = state_dir / "nginx"
            (prefix / "tmp").mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            conf.write_text(
                _nginx_conf(
                    prefix,
                    listen,
                    server_ports,
                    stack.contract,
                    # The workers of the stack's nginx: the same capacity on this machine.
                    workers(stack.contract, servers, stack.descriptor_ceiling),
                )
            )
            nginx = Child(
                "peer nginx",
                [
                    nginx_binary(),
                    "-p",
                    str(prefix),
                    "-c",
                    str(conf),
                    "-e",
                    str(prefix / "error.log"),
                ],
                prefix / "console.log",
            )
            nginx.start()
            self.children.append(nginx)
            ports.wait_open(ports.LOOPBACK, listen, 15, "peer nginx", nginx.alive)
        except BaseException:
            self.stop()
            raise
        for n, child in enumerate(self.children[:servers], start=1):
            assert child.pid is not None
            self.groups[f"peer-{n}"] = process_tree(child.pid)
            self.gateway_groups[f"peer-{n}"] = f"peer-{n}"
        server = broker.pids["rabbitmq"]
        assert server is not None and nginx.pid is not None
        self.groups["rabbitmq"] = process_tree(server)
        self.groups["nginx"] = process_tree(nginx.pid)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(10)


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{url} did not answer within {timeout:.0f} s"
                ) from None
            time.sleep(0.2)
