"""JSON-lines logging (python-json-logger) with the fields of DESIGN §5.

Every record carries time, level, logger, message, event and instance; conn and room when
the code passes them in ``extra``. Secrets are never passed to a logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_FIELDS = "%(levelname)s %(name)s %(message)s"


class _InstanceFilter(logging.Filter):
    def __init__(self, instance: str) -> None:
        super().__init__()
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        record.instance = self.instance
        if not hasattr(record, "event"):
            # Third-party records (tornado, pika) have no event name of ours.
            record.event = record.name
        return True


def setup_logging(instance: str, level: str = "INFO", stream: Any = None) -> None:
    """Route the root logger to JSON lines on stdout (journald keeps them on NixOS)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            _FIELDS,
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC, microseconds
            json_ensure_ascii=False,
        )
    )
    handler.addFilter(_InstanceFilter(instance))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # tornado logs every request at INFO; keep access logs at WARNING unless debugging.
    logging.getLogger("tornado.access").setLevel("DEBUG" if level == "DEBUG" else "WARNING")
    # pika narrates every connection step, and logs each failed reconnect attempt as six
    # ERROR lines; our own broker.connect_failed line carries the reason once.
    logging.getLogger("pika").setLevel("DEBUG" if level == "DEBUG" else "CRITICAL")
