"""The test broker speaks TLS only, with the CA generated for this session, and no guest."""

from __future__ import annotations

import socket
import ssl

import pika
import pika.exceptions
import pytest

from chatstack.devstack import pki
from chatstack.devstack import rabbitmq as rmq

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _handshake(broker: rmq.Broker, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection((broker.host, broker.amqps_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=broker.host) as tls,
    ):
        return str(tls.version())


def test_tls_handshake_succeeds_with_the_generated_ca(rabbitmq: rmq.Broker) -> None:
    context = ssl.create_default_context(cafile=str(rabbitmq.ca_file))
    assert _handshake(rabbitmq, context) in {"TLSv1.2", "TLSv1.3"}


def test_tls_handshake_fails_without_the_ca(rabbitmq: rmq.Broker) -> None:
    context = ssl.create_default_context()  # system trust store: does not know our CA
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(rabbitmq, context)


def test_certificate_is_checked_against_the_host_name(rabbitmq: rmq.Broker) -> None:
    context = ssl.create_default_context(cafile=str(rabbitmq.ca_file))
    with (
        socket.create_connection((rabbitmq.host, rabbitmq.amqps_port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="not-the-broker.example")


def test_only_the_tls_listener_is_open(rabbitmq: rmq.Broker) -> None:
    if rabbitmq.amqp_port is not None:
        pytest.skip("CHATSTACK_TEST_AMQP_PLAIN=1 asked for a plaintext listener")
    out = rabbitmq.ctl("listeners", tool="rabbitmq-diagnostics")
    protocols = {
        line.split("protocol:")[1].split(",")[0].strip()
        for line in out.splitlines()
        if "protocol:" in line
    }
    # clustering = the Erlang distribution (loopback), amqp/ssl = AMQPS; nothing plaintext.
    assert protocols == {"clustering", "amqp/ssl"}, out


def test_plain_amqp_is_not_spoken_on_the_tls_port(rabbitmq: rmq.Broker) -> None:
    with socket.create_connection((rabbitmq.host, rabbitmq.amqps_port), timeout=10) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        sock.settimeout(10)
        try:
            reply = sock.recv(64)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"\x01\x00\x00"), "the TLS port answered a plaintext AMQP handshake"


def test_service_users_log_in_over_tls(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    for role in ("gateway", "history"):
        conn = amqp_connect(role)
        assert conn.is_open


def test_guest_cannot_log_in(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_connect(username="guest", password="guest")


def test_guest_user_does_not_exist(rabbitmq: rmq.Broker) -> None:
    names = [line.split("\t")[0] for line in rabbitmq.ctl("list_users", "--quiet").splitlines()[1:]]
    assert "guest" not in names
    assert sorted(names) == sorted(rabbitmq.user(r) for r in ("gateway", "history"))


def test_a_wrong_password_is_refused(amqp_connect, rabbitmq: rmq.Broker) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_connect(username=rabbitmq.user("gateway"), password="not-the-password")


def test_password_files_are_private(rabbitmq: rmq.Broker) -> None:
    for role in ("gateway", "history"):
        assert rabbitmq.password_file(role).stat().st_mode & 0o077 == 0


def test_a_client_certificate_from_the_ca_is_accepted(rabbitmq: rmq.Broker) -> None:
    ca = rabbitmq.spec.pki
    assert ca.client_cert is not None and ca.client_key is not None
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.load_cert_chain(str(ca.client_cert), str(ca.client_key))
    assert _handshake(rabbitmq, context) in {"TLSv1.2", "TLSv1.3"}


def test_a_client_certificate_from_another_ca_is_refused(
    rabbitmq: rmq.Broker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = pki.make_pki(tmp_path_factory.mktemp("other-ca"), client=True)
    assert other.client_cert is not None and other.client_key is not None
    context = ssl.create_default_context(cafile=str(rabbitmq.ca_file))
    context.load_cert_chain(str(other.client_cert), str(other.client_key))
    # TLS 1.3 reports the server's rejection of our certificate on the first read.
    with (
        pytest.raises((ssl.SSLError, ConnectionResetError)),
        socket.create_connection((rabbitmq.host, rabbitmq.amqps_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=rabbitmq.host) as tls,
    ):
        tls.sendall(b"AMQP\x00\x00\x09\x01")
        tls.recv(8)
