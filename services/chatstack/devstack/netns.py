"""Network namespaces for the partition tests: one service per namespace, joined to the
host by its own veth pair, and a blackhole that silently drops one TCP port.

Why namespaces (and not packet filtering by uid): a service in its own namespace has its
own addresses and its own netfilter tables, so the blackhole rules below catch exactly that
process's broker traffic — the established connection and every reconnect attempt — in
both directions, while its HTTP side (nginx → service, the test → /readyz) keeps working
through the same veth. Filtering by uid would need each service to run as its own user
(file ownership of configs, keys and the venv) and conntrack marks to catch the broker's
half of the connection on loopback.

The blackhole is nftables ``drop`` (no RST, no ICMP): the peers see silence, as with a
pulled cable, and only heartbeats and timeouts can tell. Needs root, ``ip`` (iproute2) and
``nft`` (Debian package ``nftables``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

_TABLE = "chatstack_partition"


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing (apt-get install {package})"
    return None


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


@dataclass(frozen=True)
class Namespace:
    """``name`` with a veth pair on a /30: ``host_address`` on the host side, ``address``
    inside. Names and addresses are derived from (pid, index), so test runs side by side
    do not collide."""

    name: str
    host_if: str
    address: str
    host_address: str

    @classmethod
    def for_index(cls, index: int, pid: int | None = None) -> Namespace:
        pid = os.getpid() if pid is None else pid
        tag = f"{pid % 100000:05d}{index}"
        # 10.213.<pid>.<4*index>/30 (index < 64): .1 host side, .2 namespace side.
        third, base = pid % 250, 4 * index
        return cls(
            name=f"chatstack-{tag}",
            host_if=f"cs{tag}h",
            address=f"10.213.{third}.{base + 2}",
            host_address=f"10.213.{third}.{base + 1}",
        )

    @property
    def _ns_if(self) -> str:
        return self.host_if[:-1] + "n"

    def create(self) -> None:
        self.delete()  # a leftover of a killed run with the same pid
        _run("ip", "netns", "add", self.name)
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self._ns_if)
        _run("ip", "link", "set", self._ns_if, "netns", self.name)
        _run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        inside = ("ip", "-n", self.name)
        _run(*inside, "addr", "add", f"{self.address}/30", "dev", self._ns_if)
        _run(*inside, "link", "set", self._ns_if, "up")
        _run(*inside, "link", "set", "lo", "up")

    def delete(self) -> None:
        """Remove the namespace (its veth pair goes with it). Safe to repeat."""
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def blackhole(self, port: int) -> None:
        """Drop every TCP segment to or from ``port`` of anyone, inside this namespace."""
        rules = f"""
        table inet {_TABLE} {{
            chain out {{
                type filter hook output priority 0; policy accept; tcp dport {port} drop;
            }}
            chain in {{
                type filter hook input priority 0; policy accept; tcp sport {port} drop;
            }}
        }}
        """
        _run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=rules)

    def heal(self) -> None:
        _run("ip", "netns", "exec", self.name, "nft", "delete", "table", "inet", _TABLE)
