#!/usr/bin/env python3
"""Print a pip requirements file (exact versions and sha256 hashes) from services/poetry.lock.

Why not `poetry install`: it asks PyPI's per-version JSON API for every locked package,
which some mirrors (this project's CI among them) do not serve, and it would need Poetry
itself on every machine. pip with --require-hashes --no-deps installs exactly what the lock
pins and nothing else, using only the standard package index.
"""

import sys
import tomllib
from pathlib import Path


def requirements(lock_path: Path) -> list[str]:
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    lines = []
    for package in lock["package"]:
        hashes = sorted({f["hash"] for f in package.get("files", [])})
        if not hashes:
            raise SystemExit(
                f"{lock_path}: {package['name']} has no file hashes; run `poetry lock`"
            )
        pins = " ".join(f"--hash={h}" for h in hashes)
        lines.append(f"{package['name']}=={package['version']} {pins}")
    return lines


def main() -> None:
    lock_path = Path(sys.argv[1] if len(sys.argv) > 1 else "services/poetry.lock")
    print("\n".join(requirements(lock_path)))


if __name__ == "__main__":
    main()
