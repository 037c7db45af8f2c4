"""A minimal TOML writer for the service configs (tables of strings, numbers, booleans, lists).

The standard library reads TOML but does not write it, and the configs are flat enough that
a dependency (tomli-w) would not pay for itself. Anything else is refused, not guessed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key}: {value!r} cannot be written as TOML")
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(key, item) for item in value) + "]"
    raise TypeError(f"{key}: {type(value).__name__} is not supported in a service config")


def dumps(document: Mapping[str, Any]) -> str:
    """Top-level keys first, then one ``[table]`` per mapping (one level deep)."""
    lines = [f"{k} = {_value(k, v)}" for k, v in document.items() if not isinstance(v, Mapping)]
    for table, body in document.items():
        if not isinstance(body, Mapping):
            continue
        lines += ["", f"[{table}]"]
        for key, value in body.items():
            if isinstance(value, Mapping):
                raise TypeError(f"{table}.{key}: nested tables are not supported")
            lines.append(f"{key} = {_value(f'{table}.{key}', value)}")
    return "\n".join(lines) + "\n"
