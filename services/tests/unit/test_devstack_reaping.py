"""A devstack child that dies on its own (kill -9 from outside) is reaped the next time the
stack checks on it: no zombie left while the stack runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from chatstack.devstack.procs import Child


def state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def test_a_killed_child_is_reaped_not_left_a_zombie(tmp_path: Path) -> None:
    child = Child("sleeper", ["sleep", "60"], tmp_path / "sleeper.log")
    child.start()
    assert child.alive() and child.pid is not None
    pid = child.pid
    os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped yet: a zombie
    assert state(pid) == "Z"
    assert not child.alive()
    assert state(pid) is None  # reaped
    child.stop()  # and stopping it afterwards is harmless
