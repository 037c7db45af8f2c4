"""/healthz (the process answers) and /readyz (it can do its job right now)."""

from __future__ import annotations

from collections.abc import Callable

import tornado.web


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, instance: str) -> None:
        self.instance = instance

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write({"status": "ok", "instance": self.instance})


class ReadyHandler(tornado.web.RequestHandler):
    """Ready when every check passes; 503 says why not.

    ``checks`` maps the reason reported when a check fails to the check itself;
    ``problems`` returns reasons only known at run time (e.g. why the store fails).
    """

    def initialize(
        self,
        instance: str,
        checks: dict[str, Callable[[], bool]],
        problems: Callable[[], list[str]] = list,
    ) -> None:
        self.instance = instance
        self.checks = checks
        self.problems = problems

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        failing = sorted(reason for reason, check in self.checks.items() if not check())
        failing += self.problems()
        if failing:
            self.set_status(503)
            self.write(
                {"status": "not ready", "instance": self.instance, "reason": ", ".join(failing)}
            )
        else:
            self.write({"status": "ready", "instance": self.instance})
