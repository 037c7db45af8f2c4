"""The results as a plain-text table."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    "target",
    "case",
    "msg/s",
    "deliv/s",
    "delivered",
    "p50",
    "p99",
    "p99.9",
    "taken p50/p99",
    "ack p50",
    "ack p99",
    "µs/deliv per gateway",
    "CPU %",
)


def _row(r: dict[str, Any]) -> list[str]:
    d, a = r["delivery_ms"], r["ack_ms"]
    taken = r.get("accepted_ms")
    per_gw = " ".join(
        f"{name}={g['cpu_us_per_delivery']}"
        for name, g in sorted(r["per_gateway"].items())
    )
    cpu = " ".join(f"{k}={v}" for k, v in r["cpu_percent"].items())
    return [
        r.get("target", ""),
        r["case"],
        f"{r['messages_per_s']:.0f}",
        f"{r['deliveries_per_s']:.0f}",
        f"{r.get('delivered_fraction')}",
        f"{d['p50']}",
        f"{d['p99']}",
        f"{d['p99.9']}",
        f"{taken['p50']}/{taken['p99']}" if taken else "-",
        f"{a['p50']}",
        f"{a['p99']}",
        per_gw,
        cpu,
    ]


def table(results: list[dict[str, Any]]) -> str:
    rows = [list(COLUMNS)] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )
