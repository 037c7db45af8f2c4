"""chat-gateway and chat-history as real processes on RabbitMQ: config file, systemd
readiness, /readyz, a message through both, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import Client, eventually, get, get_json, run

from chatstack.devstack.ports import free_port
from chatstack.devstack.services import script

pytestmark = pytest.mark.integration


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(path: Path, rabbitmq: Any, role: str, port: int) -> Path:
    lines = [f'instance = "it-{role}"', "[http]", f"port = {port}", "[broker]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in rabbitmq.broker_config(role).items()]
    lines += ["[history]", f"database = {json.dumps(str(path.parent / 'history.sqlite3'))}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start(name: str, config: Path, notify: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
    return subprocess.Popen(
        [script(name), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env | {"NOTIFY_SOCKET": notify},
    )


def test_gateway_and_history_processes(tmp_path: Path, rabbitmq: Any) -> None:
    gateway_port, history_port = free_port(), free_port()
    procs: list[subprocess.Popen[str]] = []
    sockets = []
    try:
        for name, role, port in (
            ("chat-history", "history", history_port),
            ("chat-gateway", "gateway", gateway_port),
        ):
            address = str(tmp_path / f"{role}.notify")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            listener.bind(address)
            listener.settimeout(30)
            sockets.append(listener)
            config = write_config(tmp_path / f"{role}.toml", rabbitmq, role, port)
            procs.append(start(name, config, address))
            # READY=1 only once it listens and reached RabbitMQ.
            assert listener.recv(4096).decode().startswith("READY=1"), name

        async def scenario() -> None:
            for port in (gateway_port, history_port):
                ready = await get_json(f"http://127.0.0.1:{port}/readyz")
                assert ready["status"] == "ready"
            client = await Client.connect(f"ws://127.0.0.1:{gateway_port}/ws")
            await client.join("proc-room", "ada")
            ack = await client.say("proc-room", "through real processes", "p1")

            async def stored() -> bool:
                page = await get_json(
                    f"http://127.0.0.1:{history_port}/api/rooms/proc-room/messages"
                )
                return [m["id"] for m in page["messages"]] == [ack["id"]]

            await eventually(stored)
            assert (await get(f"http://127.0.0.1:{gateway_port}/api/rooms/x/messages")).code == 404

        run(scenario())
        for proc, listener in zip(reversed(procs), reversed(sockets), strict=True):
            proc.send_signal(signal.SIGTERM)
            assert listener.recv(4096).decode().startswith("STOPPING=1")
            _out, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        for listener in sockets:
            listener.close()
