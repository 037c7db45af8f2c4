"""Optional profiles of the gateways during a case (``--profile DIR``): py-spy from the
bench's tools venv (``.tools/bench``, see README.md) records each gateway process for the
measured seconds, as a flame graph (SVG) and as collapsed stacks, and ``summary`` prints
where the time went (self time by function)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from pathlib import Path

from .targets import Target

PY_SPY = Path(".tools/bench/bin/py-spy")


def _py_spy() -> str:
    found = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError(
            "py-spy not found: make bench-tools (README.md in tools/chatbench)"
        )
    return found


def start(
    target: Target, case: str, seconds: float, out: Path | None
) -> list[asyncio.Task[asyncio.subprocess.Process]]:
    """Nothing without ``out``; else one py-spy per gateway and format, started now."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{target.name}-{case}").strip("-")
    started = []
    for group in target.gateway_groups.values():
        pid = target.groups[group][0]
        name = f"{slug}-{group.replace(' ', '-')}"
        for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            command = [
                _py_spy(),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
            ]
            command += [
                "--rate",
                "200",
                "--format",
                fmt,
                "-o",
                str(out / f"{name}.{suffix}"),
            ]
            command += ["--nonblocking"]
            started.append(
                asyncio.ensure_future(
                    asyncio.create_subprocess_exec(
                        *command,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                )
            )
    return started


async def finish(profilers: list[asyncio.Task[asyncio.subprocess.Process]]) -> None:
    for task in profilers:
        process = await task
        await process.wait()


def summary(raw: Path, top: int = 25) -> str:
    """Self and inclusive time by function, from py-spy's collapsed stacks (``raw``)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples; self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for path in sys.argv[1:]:
        print(f"== {path}\n{summary(Path(path))}")
