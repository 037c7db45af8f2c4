"""What a flow reports: one line per checked step, and a one-line reason when it fails.

The lines are the probe's interface to people and to the NixOS VM tests (which grep them),
so they carry no timings, random room names or ids: the same system gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

# What a flow calls once per check that held, with a short deterministic description.
Step = Callable[[str], None]


class FlowFailed(Exception):
    """A check did not hold; ``str(exc)`` is the one-line reason printed to the user."""


class SingleInstance(FlowFailed):
    """Only one gateway instance answered: a flow across gateways cannot check anything.
    ``chat-probe all`` reports the flow as skipped (a single instance, such as ``make run``,
    is a supported setup); run by name, the flow fails."""


class Reporter:
    """Writes ``<flow>: ok <step>`` lines and the final verdicts to a text stream."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def step(self, flow: str, text: str) -> None:
        self._line(f"{flow}: ok {text}")

    def passed(self, flow: str) -> None:
        self._line(f"{flow}: PASS")

    def skipped(self, flow: str, reason: str) -> None:
        self._line(f"{flow}: SKIP {' '.join(reason.split())}")

    def failed(self, flow: str, reason: str) -> None:
        # One line whatever the reason contains, so `grep FAIL` shows the whole reason.
        self._line(f"{flow}: FAIL {' '.join(reason.split())}")
