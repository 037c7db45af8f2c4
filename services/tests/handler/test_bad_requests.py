"""Bad HTTP requests get a 4xx with an error code, one short access-log line and no
traceback; a not-ready /readyz is not logged as a server error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from support import embedded, get, make_config, run, serving

from chatstack.broker.memory import MemoryHub
from chatstack.history.service import HistoryService
from chatstack.history.store import HistoryStore
from chatstack.metrics import Metrics
from chatstack.web.access_log import MAX_URI_CHARS
from chatstack.web.app import make_history_app

BAD = [
    ("/api/rooms/lobby/messages?limit=%C2%B2", "bad_limit"),  # "²": str.isdigit() says yes
    ("/api/rooms/lobby/messages?limit=" + "9" * 5000, "bad_limit"),  # over int()'s 4,300
    ("/api/rooms/lobby/messages?limit=0009", "bad_limit"),  # fine: 9 — see below
    ("/index.html%00.js", "bad_path"),
    ("/%01", "bad_path"),
]


def test_bad_requests_are_4xx_with_a_code_and_cheap_to_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as e:
            for path, code in BAD:
                response = await get(e.served.http + path)
                if path.endswith("=0009"):
                    assert response.code == 200  # leading zeros are still a number
                    continue
                assert response.code == 400, path
                assert json.loads(response.body)["error"]["code"] == code

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    access = [r for r in caplog.records if r.name == "tornado.access" and r.levelno >= 30]
    assert len(access) == len(BAD) - 1
    assert all(r.levelno == logging.WARNING for r in access)
    assert all(len(r.getMessage()) < MAX_URI_CHARS + 100 for r in access)


def test_a_not_ready_readyz_is_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        config = make_config("serve", tmp_path)
        history = HistoryService(HistoryStore(tmp_path / "h.sqlite3"), MemoryHub().history())
        async with serving(make_history_app(config, history, Metrics())) as served:
            response = await get(f"{served.http}/readyz")
            assert response.code == 503  # never started: store not open, broker not ready

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    lines = [r for r in caplog.records if r.name == "tornado.access"]
    assert [(r.levelno, r.getMessage().split()[0]) for r in lines] == [(logging.INFO, "503")]
