"""The stack's chat history is private: database files 0600 in a 0700 directory."""

from __future__ import annotations

import stat

import pytest
from chatstack.devstack.stack import Stack

pytestmark = pytest.mark.stack


def test_history_database_is_private(stack: Stack) -> None:
    directory = stack.state_dir / "history"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(directory.glob("history.sqlite3*"))
    assert "history.sqlite3" in {f.name for f in files}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
