"""Fixtures of the browser tests: a headless Chromium (tests/browser/chromium_cdp.py) and
the site it opens — ``chatstack serve`` and the local stack behind nginx (issue 3), each
test running against both.

Chromium missing: the tests skip with the install command, except under ``CI=true``,
where they fail (CI must not pass by skipping). On a failure, screenshots and console logs
of every page land in var/test-artifacts/browser/<test>/, named in the failure message.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_sites import EmbeddedSite, StackSite
from chromium_cdp import Browser, chromium_binary

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts" / "browser"
SCENARIO_TIMEOUT_S = 120.0

Scenario = Callable[[Browser], Awaitable[None]]


@pytest.fixture(scope="session")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the session: the browser and its websocket live across tests."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture(scope="session")
def browser(loop: asyncio.AbstractEventLoop) -> Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        reason = "chromium not found; install with: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    handle = Browser(binary)
    loop.run_until_complete(handle.start())
    try:
        yield handle
    finally:
        loop.run_until_complete(handle.stop())


@pytest.fixture(scope="session")
def embedded_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSite]:
    site = EmbeddedSite(tmp_path_factory.mktemp("browser-serve"))
    site.start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(params=["embedded", "stack"])
def site(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "embedded":
        embedded: EmbeddedSite = request.getfixturevalue("embedded_site")
        yield embedded
        if (
            not embedded.server.running()
        ):  # a test dropped it and failed before restoring
            embedded.start()
    else:
        yield StackSite(request.getfixturevalue("stack"))


@pytest.fixture
def run_in_browser(
    request: pytest.FixtureRequest,
    loop: asyncio.AbstractEventLoop,
    browser: Browser,
    site: Any,
) -> Iterator[Callable[[Scenario], None]]:
    """Runs a scenario; on failure keeps screenshots and console logs and says where."""

    def run(scenario: Scenario) -> None:
        try:
            loop.run_until_complete(
                asyncio.wait_for(scenario(browser), SCENARIO_TIMEOUT_S)
            )
        except BaseException as exc:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            where = ARTIFACTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            loop.run_until_complete(browser.save_artifacts(where))
            (where / "site.txt").write_text(site.describe() + "\n")
            if isinstance(site, EmbeddedSite) and site.log_path.exists():
                shutil.copy(site.log_path, where / "chatstack-serve.log")
            kind = (
                "timed out"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}"
            )
            raise AssertionError(
                f"{kind}\nscreenshots and console logs: {where}"
            ) from exc

    try:
        yield run
    finally:
        loop.run_until_complete(browser.close_pages())


@pytest.fixture(scope="session")
def axe() -> str:
    """The source of axe.min.js (tests/browser/axe_check.py)."""
    from axe_check import axe_source

    return axe_source()
