"""The probe's named flows against the running stack, through nginx (as a person runs them).

``chat-probe <flow> --url <nginx>`` is run as a subprocess, exactly the command of
docs/local-stack.md and of the NixOS VM tests; it exits non-zero with its reason on failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chatstack.devstack.stack import Stack
from chatstack.probe import flows as probe_flows

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

# Every flow of `chat-probe all` (what vm-chat runs), each on its own for a clear failure.
FLOWS = list(probe_flows.FLOWS)


def chat_probe() -> str:
    beside = Path(sys.executable).parent / "chat-probe"
    return str(beside) if beside.exists() else "chat-probe"


@pytest.mark.parametrize("flow", FLOWS)
def test_probe_flow_passes_through_nginx(stack: Stack, flow: str) -> None:
    result = subprocess.run(
        [chat_probe(), flow, "--url", stack.url],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        f"chat-probe {flow} --url {stack.url} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert f"{flow}: PASS" in result.stdout, result.stdout


def test_probe_fails_against_a_dead_url(stack: Stack) -> None:
    """The flows above can fail: the same command against nothing exits non-zero."""
    from chatstack.devstack.ports import free_port

    result = subprocess.run(
        [chat_probe(), "cross-instance", "--url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
