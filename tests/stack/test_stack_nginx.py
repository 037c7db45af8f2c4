"""nginx of the stack: gixy finds nothing, the contract's headers are sent once on every
path, no CORS header, and the renderer refuses a contract it cannot honour."""

from __future__ import annotations

import copy
import dataclasses
import os
import resource
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chatstack import capacity
from chatstack.devstack import contract as contract_mod
from chatstack.devstack import nginx
from chatstack.devstack.stack import Stack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "tests"))
from rawws import RawWebSocket

REPO = Path(__file__).resolve().parents[2]
GIXY_REQUIREMENTS = Path(__file__).with_name("gixy-requirements.txt")
GIXY_VENV = REPO / ".tools" / "gixy"  # the same venv `make gixy` builds


def gixy() -> Path:
    """gixy from its own pinned tools venv, built on first use (CI starts from a clean clone)."""
    binary = GIXY_VENV / "bin" / "gixy"
    marker = GIXY_VENV / ".installed"
    if (
        not marker.exists()
        or marker.stat().st_mtime < GIXY_REQUIREMENTS.stat().st_mtime
    ):
        subprocess.run([sys.executable, "-m", "venv", str(GIXY_VENV)], check=True)
        subprocess.run(
            [
                str(GIXY_VENV / "bin" / "pip"),
                "install",
                "--quiet",
                "-r",
                str(GIXY_REQUIREMENTS),
            ],
            check=True,
            timeout=600,
        )
        marker.touch()
    return binary


def get(url: str) -> tuple[int, list[tuple[str, str]]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status), list(resp.headers.items())
    except urllib.error.HTTPError as err:
        return err.code, list(err.headers.items())


@pytest.mark.stack
@pytest.mark.timeout(900)
def test_gixy_finds_nothing(stack: Stack) -> None:
    result = subprocess.run(
        [str(gixy()), str(stack.nginx.site.conf_file)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No issues found" in result.stdout, result.stdout


@pytest.mark.stack
@pytest.mark.parametrize(
    "path",
    ["/", "/api/rooms/lobby/messages", "/no-such-file", "/api/rooms/%20/messages"],
)
def test_security_headers_once_and_no_cors(stack: Stack, path: str) -> None:
    status, headers = get(stack.url + path)
    assert status != 0
    names = [name.lower() for name, _ in headers]
    for name, value in contract_mod.load()["proxy"]["headers"].items():
        assert names.count(name.lower()) == 1, (
            f"{path} (HTTP {status}): {name} x{names.count(name.lower())}"
        )
        assert {n.lower(): v for n, v in headers}[name.lower()] == value
    assert not any(n.startswith("access-control-") for n in names), headers


@pytest.mark.stack
def test_websocket_route_reaches_a_gateway_with_the_headers(stack: Stack) -> None:
    # A plain GET on the websocket route is answered by a gateway (not nginx's own 404).
    status, headers = get(stack.url + contract_mod.load()["routes"]["websocket"])
    assert status in (400, 403, 426), status
    names = [name.lower() for name, _ in headers]
    assert "content-security-policy" in names


def test_rendered_config_uses_the_contract(tmp_path: Path) -> None:
    contract = contract_mod.load()
    site = nginx.Site(
        listen=nginx.Upstream("127.0.0.1", 1),
        gateways=(nginx.Upstream("127.0.0.1", 2), nginx.Upstream("127.0.0.1", 3)),
        history=nginx.Upstream("127.0.0.1", 4),
        static_dir=tmp_path,
        prefix=tmp_path,
    )
    text = nginx.render(contract, site)
    proxy = contract["proxy"]
    assert f"upstream {proxy['upstream_gateways']} {{" in text
    assert f"proxy_read_timeout {proxy['websocket_timeout_s']}s;" in text
    assert (
        text.count(
            f"max_fails={proxy['max_fails']} fail_timeout={proxy['fail_timeout_s']}s"
        )
        == 3
    )
    assert text.count("add_header ") == len(proxy["headers"])
    assert "Access-Control" not in text


def test_render_refuses_a_websocket_timeout_below_the_ping_interval(
    tmp_path: Path,
) -> None:
    contract = copy.deepcopy(contract_mod.load())
    contract["proxy"]["websocket_timeout_s"] = contract["websocket"]["ping_interval_s"]
    site = nginx.Site(nginx.Upstream("127.0.0.1", 1), (nginx.Upstream("127.0.0.1", 2),),
                      nginx.Upstream("127.0.0.1", 3), tmp_path, tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="websocket_timeout_s"):
        nginx.render(contract, site)


def test_render_refuses_a_header_value_that_would_break_the_config(
    tmp_path: Path,
) -> None:
    contract = copy.deepcopy(contract_mod.load())
    contract["proxy"]["headers"]["X-Frame-Options"] = 'DENY"; add_header X-Evil "1'
    site = nginx.Site(nginx.Upstream("127.0.0.1", 1), (nginx.Upstream("127.0.0.1", 2),),
                      nginx.Upstream("127.0.0.1", 3), tmp_path, tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="X-Frame-Options"):
        nginx.render(contract, site)


def test_rendered_config_is_sized_and_guarded_from_the_contract(tmp_path: Path) -> None:
    contract = contract_mod.load()
    gateways = tuple(nginx.Upstream("127.0.0.1", port) for port in (2, 3, 5))
    site = nginx.Site(
        listen=nginx.Upstream("127.0.0.1", 1),
        gateways=gateways,
        history=nginx.Upstream("127.0.0.1", 4),
        static_dir=tmp_path,
        prefix=tmp_path,
    )
    text = nginx.render(contract, site)
    proxy = contract["proxy"]
    connections = contract["connections"]
    # Three gateways behind it: room for each one's websockets, two nginx connections each.
    sized = capacity.proxy(connections, 3)
    assert sized.websockets == 3 * connections["websockets_per_gateway"] >= 3 * 20000
    assert sized.worker_connections >= 2 * sized.websockets
    assert sized.worker_rlimit_nofile > sized.worker_connections
    assert f"worker_connections {sized.worker_connections};" in text
    assert f"worker_rlimit_nofile {sized.worker_rlimit_nofile};" in text
    # The stack's two gateways: a smaller nginx.
    two = nginx.render(contract, dataclasses.replace(site, gateways=gateways[:2]))
    assert (
        f"worker_connections {capacity.proxy(connections, 2).worker_connections};"
        in two
    )
    zone = proxy["per_address_zone"]
    assert f"limit_conn {zone} {connections['per_address']};" in text
    assert "listen 127.0.0.1:1 default_server;" in text
    assert f"return {proxy['unknown_host_status']};" in text
    # Where a process may hold fewer descriptors, nginx spreads over workers when asked to.
    spread = nginx.workers(contract, 3, 20000, spread=True)
    assert spread.processes > 1 and spread.nofile == 20000
    assert (
        spread.processes * spread.connections * nginx.SPREAD_SHARE
        >= sized.worker_connections
    )
    text = nginx.render(contract, dataclasses.replace(site, workers=spread))
    assert f"worker_processes {spread.processes};" in text
    assert "worker_rlimit_nofile 20000;" in text and "default_server reuseport;" in text
    assert nginx.workers(contract, 3, 20000) == nginx.Workers(
        1, spread.connections, 20000
    )
    broken = copy.deepcopy(contract)
    broken["connections"]["websockets_per_gateway"] = 0
    with pytest.raises(ValueError, match="connections.websockets_per_gateway"):
        nginx.render(broken, site)


def _limits(pid: int) -> tuple[int, int]:
    """(soft, hard) "Max open files" of a running process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-files limit for pid {pid}")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.stack
def test_the_stack_gets_the_descriptor_limits_its_capacity_needs(stack: Stack) -> None:
    """Each gateway may hold connections.websockets_per_gateway (+ headroom) and nginx all
    of them: their open-files limits are the derived ones (chatstack.capacity), or the
    hard limit where it is lower and cannot be raised (a container without
    CAP_SYS_RESOURCE); the stack raised it where it could."""
    connections = contract_mod.load()["connections"]
    needed = stack.descriptors_needed()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert stack.descriptor_ceiling == (
        None if hard == resource.RLIM_INFINITY else hard
    )
    if _can_raise_hard_limit():
        assert stack.descriptor_ceiling is None or stack.descriptor_ceiling >= needed
    ceiling = stack.descriptor_ceiling
    service = capacity.service_nofile(
        connections, capacity.max_connections(connections)
    )
    for gateway in stack.gateways:
        assert gateway.pid is not None
        soft = _limits(gateway.pid)[0]
        assert soft >= (service if ceiling is None else min(service, ceiling))
    shape = stack.nginx.site.workers
    assert shape is not None and shape == nginx.workers(
        contract_mod.load(), len(stack.gateways), ceiling
    )
    assert stack.nginx.pid is not None
    workers = _children(stack.nginx.pid)
    assert len(workers) == shape.processes
    for worker in workers:
        assert _limits(worker) == (shape.nofile, shape.nofile)


def _can_raise_hard_limit() -> bool:
    """Whether this process may raise its hard RLIMIT_NOFILE (CAP_SYS_RESOURCE)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))
    return False


def _status_with_host(stack: Stack, host: str) -> int:
    listen = stack.nginx.site.listen
    with socket.create_connection((listen.host, listen.port), 10) as sock:
        sock.sendall(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        head = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(head.split()[1])


@pytest.mark.stack
def test_unknown_host_names_are_refused(stack: Stack) -> None:
    port = stack.nginx.site.listen.port
    assert _status_with_host(stack, f"127.0.0.1:{port}") == 200
    assert _status_with_host(stack, f"localhost:{port}") == 200
    refused = contract_mod.load()["proxy"]["unknown_host_status"]
    assert _status_with_host(stack, f"evil.example:{port}") == refused


@pytest.mark.stack
def test_websockets_per_address_are_limited_by_nginx(stack: Stack) -> None:
    contract = contract_mod.load()
    per_address = int(contract["connections"]["per_address"])
    listen = stack.nginx.site.listen
    held: list[RawWebSocket] = []
    refusal = ""
    try:
        for _ in range(per_address + 5):
            try:
                held.append(RawWebSocket.connect(listen.host, listen.port))
            except ConnectionRefusedError as exc:
                refusal = str(exc)
                break
    finally:
        for ws in held:
            ws.close()
    assert str(contract["proxy"]["per_address_status"]) in refusal, refusal
    # Other tests' sockets may still be closing: a few fewer, never more.
    assert per_address - 5 <= len(held) <= per_address


@pytest.mark.stack
def test_nginx_holds_more_connections_than_the_old_1024(stack: Stack) -> None:
    """The stack's nginx had 1 worker x 1024 worker_connections (~480 websockets)."""
    listen = stack.nginx.site.listen
    idle = []
    try:
        for _ in range(1100):
            idle.append(socket.create_connection((listen.host, listen.port), 10))
        # nginx accepted them all and still serves a new one.
        assert _status_with_host(stack, f"127.0.0.1:{listen.port}") == 200
    finally:
        for sock in idle:
            sock.close()
