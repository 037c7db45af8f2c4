"""A damaged history database stops the process at start with one JSON error line and the
contract's store_unusable exit code (systemd does not restart on it): no traceback, no
crash loop, nothing served from the damaged file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from chatstack import contract
from chatstack.devstack.ports import free_port
from chatstack.devstack.services import script


def test_a_damaged_store_exits_with_the_store_unusable_code(tmp_path: Path) -> None:
    database = tmp_path / "history.sqlite3"
    database.write_bytes(b"this is no database, but it is not empty either" * 100)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
    env |= {"CHATSTACK_HISTORY__DATABASE": str(database), "CHATSTACK_HTTP__PORT": str(free_port())}
    done = subprocess.run(
        [script("chatstack"), "serve"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == contract.section("exit_codes")["store_unusable"], done
    assert "Traceback" not in done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert [line["event"] for line in errors] == ["history.store_unusable"]
    assert "file is not a database" in errors[0]["message"]
    assert database.read_bytes().startswith(b"this is no database")  # left as found
