"""Repo-level fixtures: the whole local production-like stack, for tests/stack and tests/browser.

``stack`` (session scope) starts, through ``chatstack.devstack.stack.Stack``, the same
processes ``make stack`` runs — RabbitMQ (TLS only, provisioned from the contract), one
chat-history, two chat-gateways and nginx in front — but on free loopback ports and in a
temporary directory, so a stack started by hand does not disturb the tests. The handle:

- ``stack.url``            nginx base URL, e.g. ``http://127.0.0.1:41234`` (the one origin:
                           client at ``/``, websocket at ``/ws``, history API at ``/api/``);
- ``stack.origins``        the Origin values the gateways accept (``url`` and its
                           ``localhost`` spelling);
- ``stack.gateway(n)``     gateway n = 1 or 2: ``.url``, ``.instance`` (= ``welcome.instance``),
                           ``.port``, ``.log_file``, ``.running()``, ``.status(route)`` →
                           ``(http_status, json)``; ``stack.gateways`` lists both;
- ``stack.history``        the same for chat-history;
- ``stack.rabbitmq``       the broker (``chatstack.devstack.rabbitmq.Broker``: ``.host``,
                           ``.amqps_port``, ``.amqp_port`` (None), ``.ca_file``, ``.vhost``,
                           ``.user(role)``, ``.password_file(role)``, ``.ctl(...)``);
- ``stack.kill_gateway(n)`` kill -9; ``stack.start_gateway(n)`` start it again, ready, and
                           nginx reloaded so it is used at once;
- ``stack.stop_history()`` / ``stack.start_history()`` (start waits for /readyz);
- ``stack.restart_broker(down_s=0)`` graceful stop, ``down_s`` seconds down, start;
- ``stack.components()``   ``(name, address, log file)`` rows; ``stack.state_dir``.

After every test that used ``stack``, whatever it stopped or killed is started again and
waited for, so tests do not depend on their order. Without nginx/rabbitmq-server/openssl the
tests skip with the apt-get command, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatstack.devstack import stack as stack_mod


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stack: needs the local production-like stack (nginx, RabbitMQ, services)",
    )


def require_stack_prerequisites() -> None:
    """Skip with the install command, or fail under CI=true (CI must not pass by skipping)."""
    missing = stack_mod.missing_prerequisites()
    if not missing:
        return
    reason = (
        f"missing system packages, install with: apt-get install -y {' '.join(missing)}"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def stack() -> Iterator[stack_mod.Stack]:
    require_stack_prerequisites()
    # Not pytest's tmp_path: that is 0700 root, and RabbitMQ runs as the rabbitmq user.
    base = Path(tempfile.mkdtemp(prefix="chatstack-test-stack-"))
    base.chmod(0o711)
    handle = stack_mod.Stack(
        base,
        stack_ports=stack_mod.StackPorts.free(),
        node_name=f"chatstack-test-stack-{os.getpid()}",
    )
    try:
        handle.start()
        yield handle
    finally:
        handle.stop()
        if os.environ.get("CHATSTACK_KEEP_STACK_DIR") != "1":
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _stack_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the stack (and maybe hurt it), bring every part back."""
    yield
    if "stack" in request.fixturenames:
        handle: stack_mod.Stack = request.getfixturevalue("stack")
        handle.ensure_running()
