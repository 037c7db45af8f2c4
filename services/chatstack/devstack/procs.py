"""Child processes of the stack: one session each, output to a log file, stopped by pid.

Each child gets its own session (process group) so that stopping it also stops what it
spawned (RabbitMQ's erl_child_setup, nginx workers) and a Ctrl-C in the terminal reaches
only the orchestrator, which then stops the children in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone.

    Stored next to a pid so that ``make stack-stop`` never signals a recycled pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after its ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


class Child:
    """A started process with its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting %s: %s (log %s)", self.name, " ".join(self.argv), self.log_file)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                start_new_session=True,
            )

    def alive(self) -> bool:
        """Running; a leader found dead (crashed, killed from outside) is reaped here, so a
        killed service never stays a zombie while the stack runs (the stack polls this)."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        if not _wait_exited(self.proc.pid, 0):
            return True
        self._reap()
        return False

    def _reap(self) -> None:
        """Kill helpers the exited leader left in its group, then reap the leader. In that
        order: until the leader is reaped its pgid cannot be recycled, so the group signal
        cannot reach an unrelated process."""
        assert self.proc is not None
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.returncode is not None:
            return
        if not _wait_exited(self.proc.pid, 0):
            log.info("stopping %s (pid %s)", self.name, self.proc.pid)
            _signal_group(self.proc.pid, signal.SIGTERM)
            if not _wait_exited(self.proc.pid, timeout):
                log.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, not a shutdown."""
        if self.proc is None:
            return
        if self.proc.returncode is not None:
            return
        log.info("killing %s (pid %s) with SIGKILL", self.name, self.proc.pid)
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def raise_descriptor_ceiling(wanted: int) -> int:
    """Raise this process's hard RLIMIT_NOFILE to at least ``wanted`` so that the children
    started afterwards inherit room for their own limits (each raises its soft limit
    within it: a service to its http.max_connections + fd_reserve, nginx's worker to
    worker_rlimit_nofile). The soft limit stays. Raising the hard limit needs root
    (CAP_SYS_RESOURCE) and stops at fs.nr_open; returns the hard limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        return hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, wanted))
    except (ValueError, OSError):
        return hard
    return wanted


def _wait_exited(pid: int, timeout: float) -> bool:
    """Wait for our child ``pid`` to exit WITHOUT reaping it (it stays a zombie)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop_recorded(
    pid: int, started: int | None, timeout: float = 20.0, *, group: bool = True
) -> bool:
    """Stop a process (its group when ``group``) recorded by an earlier run, if it is still
    that same process (same kernel start time); True when there was something to stop."""
    if started is None or start_time(pid) != started:
        return False
    if group:
        _signal_group(pid, signal.SIGTERM)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if start_time(pid) != started:
            return True
        time.sleep(0.2)
    if group:
        _signal_group(pid, signal.SIGKILL)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True
