"""Read the contract (``chatstack/contract.toml``), the one place names and numbers live."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

Contract = dict[str, Any]


def load() -> Contract:
    """Parse the contract shipped inside the package (the file the Nix modules read too)."""
    text = resources.files("chatstack").joinpath("contract.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def gateway_port(contract: Contract, instance: int) -> int:
    """Port of gateway instance ``instance`` (1-based): contract says ``gateway + N - 1``."""
    if instance < 1:
        raise ValueError(f"gateway instance numbers start at 1, got {instance}")
    return int(contract["ports"]["gateway"]) + instance - 1
