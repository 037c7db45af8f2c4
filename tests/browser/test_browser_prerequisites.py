"""A missing Chromium skips the browser tests on a laptop but fails them under CI=true.

Runs the browser suite in a child pytest with $CHROMIUM pointing nowhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# One browser test is enough: the browser fixture decides before any page opens.
SELECTED = "test_a_bad_nick_is_refused_in_words_before_sending and embedded"


def run_without_chromium(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["CHROMIUM"] = "/nonexistent/chromium"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(HERE / "test_browser_chat.py"),
            "-k",
            SELECTED,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=HERE.parents[1],
    )


@pytest.mark.parametrize("ci", [None, "false"])
def test_skips_with_the_install_command_outside_ci(ci: str | None) -> None:
    result = run_without_chromium(ci)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "apt-get install -y chromium" in result.stdout


def test_fails_under_ci() -> None:
    result = run_without_chromium("true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CI=true: chromium not found" in result.stdout
    assert "skipped" not in result.stdout


def test_missing_axe_skips_outside_ci_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import axe_check

    monkeypatch.setattr(axe_check, "AXE_JS", tmp_path / "axe.min.js")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make axe"):
        axe_check.axe_source()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: .*make axe"):
        axe_check.axe_source()
