"""systemd's readiness protocol (sd_notify), without a dependency: one datagram per state.

With ``Type=notify`` a unit counts as started only once the service says READY=1, which
chatstack does when it listens and has reached its broker. That is what lets deploy-rs
update app hosts one after the other with a gateway always serving. Outside systemd
(no $NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc, extra={"event": "sd_notify.failed"})
        return False
    return True


class Readiness:
    """Says READY=1 the first time every part is ready, and STATUS= on each change."""

    def __init__(self) -> None:
        self._announced = False

    def changed(self, ready: bool, status: str) -> None:
        if ready and not self._announced:
            self._announced = True
            notify(f"READY=1\nSTATUS={status}")
        else:
            notify(f"STATUS={status}")

    @staticmethod
    def stopping() -> None:
        notify("STOPPING=1\nSTATUS=draining")
