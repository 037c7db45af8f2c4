"""cors: no response of the public origin carries CORS headers, whatever is asked.

One origin serves everything (docs/protocol.md), so no path needs CORS; an
``Access-Control-Allow-Origin`` (worst: ``*`` or an echoed Origin with credentials) would
let other sites read the API with the user's cookies.
"""

from __future__ import annotations

from tornado.httputil import HTTPHeaders

from chatstack import contract

from ..http import handshake, request
from ..report import FlowFailed, Step
from ..target import Target, unique_room
from .origin import FOREIGN

PREFLIGHT = {
    "Origin": FOREIGN,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "content-type",
}


def cors_headers(headers: HTTPHeaders) -> list[str]:
    return sorted(
        f"{k}: {v}" for k, v in headers.get_all() if k.lower().startswith("access-control-")
    )


def check(headers: HTTPHeaders, what: str) -> None:
    found = cors_headers(headers)
    if found:
        raise FlowFailed(f"{what}: CORS header present: {'; '.join(found)}")


async def check_path(target: Target, label: str, url: str, expect: tuple[int, ...]) -> None:
    for origin in (None, FOREIGN, target.origin):
        headers = {"Origin": origin} if origin else {}
        answer = await request(target, url, headers=headers)
        what = f"GET {label}" + (f" with Origin {origin}" if origin else "")
        if answer.code not in expect:
            raise FlowFailed(
                f"{what}: HTTP {answer.code}, expected {' or '.join(map(str, expect))}"
            )
        check(answer.headers, what)
    answer = await request(target, url, method="OPTIONS", headers=PREFLIGHT)
    check(answer.headers, f"OPTIONS {label} (preflight)")


async def check_websocket(target: Target) -> None:
    for origin in (FOREIGN, target.origin):
        answer = await handshake(target, origin)
        check(answer.headers, f"websocket handshake with Origin {origin} (HTTP {answer.code})")
    answer = await request(
        target, target.url(contract.route("websocket")), method="OPTIONS", headers=PREFLIGHT
    )
    check(answer.headers, "OPTIONS /ws (preflight)")


async def run(target: Target, step: Step) -> None:
    paths = [
        (contract.route("client"), target.url(contract.route("client")), (200,)),
        (contract.route("messages"), target.messages_url(unique_room("cors")), (200,)),
        (contract.route("healthz"), target.url(contract.route("healthz")), (200,)),
        # 503 is a valid answer (broker away); the headers must be clean either way.
        (contract.route("readyz"), target.url(contract.route("readyz")), (200, 503)),
    ]
    for label, url, expect in paths:
        await check_path(target, label, url, expect)
        step(f"{label}: no Access-Control-* header (GET, GET with Origin, OPTIONS preflight)")
    await check_websocket(target)
    ws = contract.route("websocket")
    step(f"{ws}: no Access-Control-* header (refused and accepted handshake, OPTIONS)")
