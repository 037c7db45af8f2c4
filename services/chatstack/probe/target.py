"""The system under test, as a browser on its page sees it: one base URL, one origin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from chatstack import contract


def parse_base_url(url: str) -> str:
    """``http(s)://host[:port]`` without path, query or trailing slash; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url must look like http://HOST:PORT or https://HOST, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"--url must be a base URL without path or query, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Target:
    base_url: str
    # The Origin a browser on base_url would send; differs from base_url only when the
    # service is reached under another name than its public one (--origin).
    origin: str
    # Upper bound for each single wait (a frame, an HTTP answer), not for a whole flow.
    timeout: float

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.base_url.startswith("https:") else "ws"
        return scheme + self.base_url[self.base_url.index(":") :] + contract.route("websocket")

    def url(self, path: str, query: dict[str, str | int] | None = None) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")

    def messages_url(self, room: str, query: dict[str, str | int] | None = None) -> str:
        return self.url(contract.route("messages").format(room=quote(room, safe="")), query)


def unique_room(flow: str) -> str:
    """A fresh room per run, so flows can run again and again against a live system."""
    return f"probe-{flow}-{secrets.token_hex(6)}"


def unique_token() -> str:
    return secrets.token_hex(6)
