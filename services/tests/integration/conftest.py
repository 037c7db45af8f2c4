"""A real RabbitMQ for the integration tests: the ``rabbitmq`` session fixture.

The broker is Debian's ``rabbitmq-server`` run as a plain process by
``chatstack.devstack.rabbitmq`` with its own node name, free ports, its own epmd and a
temporary directory; TLS with a CA generated for this test session; the vhost, the
per-service users (random passwords in 0600 files), their contract permissions, the
exchange and the durable quorum history queue provisioned at boot; no ``guest``; no
plaintext listener unless ``CHATSTACK_TEST_AMQP_PLAIN=1`` asks for one (convenience only).

The handle yielded (a ``chatstack.devstack.rabbitmq.Broker``):

- ``.host``, ``.amqps_port``, ``.amqp_port`` (None: no plaintext listener), ``.vhost``,
  ``.ca_file``, ``.node``, ``.log_file``;
- ``.user(role)``, ``.password_file(role)`` with role ``"gateway"`` or ``"history"``;
- ``.broker_config(role)`` → the ``[broker]`` table of docs/configuration.md (absolute
  paths), ``.config(role)`` → ``{"broker": {...}}`` to merge into a service config;
- ``.stop()`` (graceful), ``.kill()`` (SIGKILL), ``.start()``, ``.restart()``,
  ``.running()``, ``.ctl(*args)`` (rabbitmqctl against this node);
- ``.spec.pki``: ``.ca_file`` and a client certificate signed by the same CA
  (``.client_cert``, ``.client_key``) for ``broker.cert_file``/``broker.key_file`` tests
  (the broker verifies a client certificate when one is presented, and does not require one).

``amqp_connect(role)`` (function scope) opens a pika BlockingConnection over TLS as that
service user and closes it after the test.

A test that stops the broker need not restart it: the broker is started again after any
test that used it and left it down. Without rabbitmq-server the tests skip with the reason,
except under ``CI=true`` where they fail (CI must never pass by skipping them).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatstack.devstack import contract as contract_mod
from chatstack.devstack import pki
from chatstack.devstack import rabbitmq as rmq

log = logging.getLogger(__name__)


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too so the marker is known however pytest is invoked (repo root or services/).
    config.addinivalue_line(
        "markers", "integration: needs a real RabbitMQ (started by the test suite)"
    )


def require_rabbitmq() -> None:
    """Skip (or, under CI=true, fail) when no RabbitMQ can be started on this machine."""
    reason = rmq.available()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and RabbitMQ is missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def rabbitmq_tmp() -> Iterator[Path]:
    """A directory the ``rabbitmq`` user can reach (pytest's own tmp is 0700 root)."""
    base = Path(tempfile.mkdtemp(prefix="chatstack-it-rabbitmq-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq(rabbitmq_tmp: Path) -> Iterator[rmq.Broker]:
    require_rabbitmq()
    contract = contract_mod.load()
    ca = pki.make_pki(rabbitmq_tmp / "pki", client=True)
    spec = rmq.BrokerSpec.on_free_ports(
        rabbitmq_tmp / "broker",
        f"chatstack-it-{os.getpid()}",
        ca,
        contract,
        amqp=os.environ.get("CHATSTACK_TEST_AMQP_PLAIN") == "1",
    )
    broker = rmq.Broker(spec, contract)
    broker.provision()
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(autouse=True)
def _rabbitmq_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the broker, make sure it runs again for the next one."""
    yield
    if "rabbitmq" in request.fixturenames:
        broker: rmq.Broker = request.getfixturevalue("rabbitmq")
        broker.ensure_running()


@pytest.fixture
def amqp_connect(rabbitmq: rmq.Broker) -> Iterator[object]:
    """``amqp_connect(role, *, username=None, password=None, cafile=<the test CA>)`` → a pika
    BlockingConnection over TLS to the test broker as that service user; closed after the test.
    ``cafile=None`` verifies against the system CAs only (which must fail)."""
    import ssl

    import pika

    opened: list[pika.BlockingConnection] = []
    default_ca = object()

    def connect(
        role: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        cafile: object = default_ca,
    ) -> pika.BlockingConnection:
        if role is not None:
            username = rabbitmq.user(role)
            password = rabbitmq.password_file(role).read_text().strip()
        context = ssl.create_default_context(
            cafile=str(rabbitmq.ca_file) if cafile is default_ca else cafile  # type: ignore[arg-type]
        )
        params = pika.ConnectionParameters(
            host=rabbitmq.host,
            port=rabbitmq.amqps_port,
            virtual_host=rabbitmq.vhost,
            credentials=pika.PlainCredentials(username or "", password or ""),
            ssl_options=pika.SSLOptions(context, server_hostname=rabbitmq.host),
            connection_attempts=1,
            socket_timeout=10,
            blocked_connection_timeout=30,
        )
        conn = pika.BlockingConnection(params)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        if conn.is_open:
            conn.close()
