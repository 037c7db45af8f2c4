"""statsd metrics whose names are declared in contract.toml [metrics].

With no statsd host configured every call is a no-op. A name that is not in the contract
raises KeyError at once, so the Netdata chart (rendered from the contract) never misses one.
"""

from __future__ import annotations

import re
from typing import Any

import statsd

from . import contract
from .config import StatsdConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class Metrics:
    def __init__(self, config: StatsdConfig | None = None) -> None:
        self._declared = contract.metric_names()
        self._client: statsd.StatsClient | None = None
        if config is not None and config.enabled:
            # UDP and fire-and-forget: a missing Netdata never slows the chat down.
            self._client = statsd.StatsClient(config.host, config.port, prefix=config.prefix)

    def _name(self, template: str, kind: str, fields: dict[str, Any]) -> str:
        declared = self._declared[template]
        if declared["type"] != kind:
            raise TypeError(f"metric {template} is a {declared['type']}, not a {kind}")
        # A value becomes one name part: dots or statsd's ':|@' in it would break the name.
        safe = {key: _UNSAFE.sub("_", str(value)) for key, value in fields.items()}
        return template.format(**safe) if safe else template

    def incr(self, template: str, count: int = 1, **fields: Any) -> None:
        name = self._name(template, "counter", fields)
        if self._client is not None:
            self._client.incr(name, count)

    def gauge(self, template: str, value: float, **fields: Any) -> None:
        name = self._name(template, "gauge", fields)
        if self._client is not None:
            self._client.gauge(name, value)

    def timing(self, template: str, ms: float, **fields: Any) -> None:
        name = self._name(template, "timer", fields)
        if self._client is not None:
            self._client.timing(name, ms)
