"""The stack's broker is TLS-only: no plaintext listener, handshake only with our CA,
and the services are configured for AMQPS with secrets as files, never values."""

from __future__ import annotations

import socket
import ssl
import tomllib

import pytest
from chatstack.devstack.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]


def handshake(stack: Stack, context: ssl.SSLContext) -> str:
    broker = stack.rabbitmq
    with (
        socket.create_connection((broker.host, broker.amqps_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=broker.host) as tls,
    ):
        return str(tls.version())


def test_broker_has_no_plaintext_listener(stack: Stack) -> None:
    assert stack.rabbitmq.amqp_port is None
    out = stack.rabbitmq.ctl("listeners", tool="rabbitmq-diagnostics")
    protocols = {
        line.split("protocol:")[1].split(",")[0].strip()
        for line in out.splitlines()
        if "protocol:" in line
    }
    assert protocols == {"clustering", "amqp/ssl"}, out
    assert f"port: {stack.rabbitmq.amqps_port}, protocol: amqp/ssl" in out, out


def test_tls_handshake_succeeds_with_the_generated_ca(stack: Stack) -> None:
    context = ssl.create_default_context(cafile=str(stack.rabbitmq.ca_file))
    assert handshake(stack, context) in {"TLSv1.2", "TLSv1.3"}


def test_tls_handshake_fails_without_the_ca(stack: Stack) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(stack, ssl.create_default_context())


def test_services_use_amqps_and_password_files(stack: Stack) -> None:
    for service in [stack.history, *stack.gateways]:
        broker = tomllib.loads(service.config_file.read_text())["broker"]
        assert broker["tls"] is True
        assert broker["port"] == stack.rabbitmq.amqps_port
        assert broker["ca_file"] == str(stack.rabbitmq.ca_file)
        assert "password" not in broker
        password_file = stack.rabbitmq.password_file(service.role)
        assert broker["password_file"] == str(password_file)
        assert password_file.stat().st_mode & 0o077 == 0, (
            "password file readable by others"
        )
        assert password_file.read_text().strip() not in service.config_file.read_text()
