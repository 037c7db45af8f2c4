"""Throwaway SSH key pairs for the repository tests (host keys, a deploy key)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ssh_keypair(path: Path) -> str:
    """An unencrypted ed25519 pair at ``path`` and ``path``.pub, no comment; returns the
    public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text().strip()
