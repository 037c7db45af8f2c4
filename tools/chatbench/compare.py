"""Before/after from bench JSON files, as ranges over repetitions and ratios of medians:

PYTHONPATH=tools .venv/bin/python -m chatbench.compare --before a.json b.json --after c.json d.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

MEASURES: dict[str, Callable[[dict[str, Any]], float]] = {
    "msg/s": lambda r: r["messages_per_s"],
    "deliv/s": lambda r: r["deliveries_per_s"],
    "delivered": lambda r: r.get("delivered_fraction") or 0.0,
    "p50 ms": lambda r: r["delivery_ms"]["p50"],
    "p99 ms": lambda r: r["delivery_ms"]["p99"],
    "ack p99 ms": lambda r: r["ack_ms"]["p99"],
    "µs/deliv/gw": lambda r: statistics.mean(
        g["cpu_us_per_delivery"]
        for g in r["per_gateway"].values()
        if g["cpu_us_per_delivery"]
    ),
}


def load(
    paths: list[Path], only: str | None = None
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    by_case: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        for result in json.loads(path.read_text())["results"]:
            if "members" not in result:
                continue
            if only is None:
                by_case[result["target"], result["case"]].append(result)
            elif result["target"] == only:
                by_case["", result["case"]].append(result)
    return by_case


def span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.4g}" if low == high else f"{low:.4g}–{high:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, nargs="+", required=True)
    parser.add_argument("--after", type=Path, nargs="+", required=True)
    parser.add_argument(
        "--targets", help="BASELINE,OTHER: compare two targets of the files"
    )
    args = parser.parse_args()
    if args.targets:
        first, second = args.targets.split(",")
        before, after = load(args.before, first), load(args.after, second)
    else:
        before, after = load(args.before), load(args.after)
    print("| target | case | measure | before | after | after/before |")
    print("|---|---|---|---|---|---|")
    for key in before:
        if key not in after:
            continue
        for name, get in MEASURES.items():
            b = [float(get(r)) for r in before[key]]
            a = [float(get(r)) for r in after[key]]
            ratio = (
                statistics.median(a) / statistics.median(b)
                if statistics.median(b)
                else 0
            )
            print(
                f"| {key[0]} | {key[1]} | {name} | {span(b)} | {span(a)} | {ratio:.2f} |"
            )


if __name__ == "__main__":
    main()
