"""The contract (``chatstack/contract.toml``) as the stack reads it, plus derived numbers."""

from __future__ import annotations

import copy
from typing import Any

from chatstack import contract as _contract

Contract = dict[str, Any]


def load() -> Contract:
    """The parsed contract shipped in the package (the file the Nix modules read too).

    A copy: the services' loader caches one dict per process, and a caller here (a test
    checking that a bad contract is refused) may change its copy.
    """
    return copy.deepcopy(_contract.contract())


def gateway_port(contract: Contract, instance: int) -> int:
    """Port of gateway instance ``instance`` (1-based): contract says ``gateway + N - 1``."""
    if instance < 1:
        raise ValueError(f"gateway instance numbers start at 1, got {instance}")
    return int(contract["ports"]["gateway"]) + instance - 1
