"""The browser client (services/chatstack/chat_client_demo/) against contract.toml and
the rules of DESIGN §1/§6 and STYLE (one origin, relative URLs, no inline code under the
CSP, text through textContent). Static checks of the files; the browser tests run them.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "services" / "chatstack" / "chat_client_demo"
CONTRACT = tomllib.loads(
    (REPO / "services" / "chatstack" / "contract.toml").read_text()
)
CONSTANTS_FILE = CLIENT / "contract.js"

# `export const NAME = <literal>; // contract: a.b.c` or `// client: why`
CONSTANT = re.compile(
    r"^export const (?P<name>[A-Z][A-Z0-9_]*) = (?P<value>.+?);"
    r"\s*//\s*(?P<kind>contract|client):\s*(?P<note>\S.*)$"
)
# Contract values the client cannot work without; each must be a checked constant.
REQUIRED = {
    "RECOVERY_OVERLAP_MS": "protocol.recovery_overlap_ms",
    "WS_PATH": "routes.websocket",
    "MESSAGES_PATH": "routes.messages",
    "PAGE_LIMIT_MAX": "protocol.page_limit_max",
    "PAGE_LIMIT_DEFAULT": "protocol.page_limit_default",
}


def client_files(*suffixes: str) -> list[Path]:
    files = sorted(p for p in CLIENT.iterdir() if p.is_file() and p.suffix in suffixes)
    assert files, f"no {suffixes} files in {CLIENT}"
    return files


def contract_value(key: str) -> Any:
    value: Any = CONTRACT
    for part in key.split("."):
        value = value[part]
    return value


def constants() -> dict[str, tuple[str, Any, str]]:
    """name -> (kind, value, contract key or reason), from contract.js."""
    found = {}
    for line in CONSTANTS_FILE.read_text().splitlines():
        if not line.startswith("export const"):
            continue
        match = CONSTANT.match(line)
        assert match, (
            f"contract.js: not `export const X = v; // contract|client: ...`: {line}"
        )
        value = json.loads(
            match["value"]
        )  # JS number and double-quoted string literals
        found[match["name"]] = (match["kind"], value, match["note"].strip())
    return found


def test_every_contract_constant_equals_contract_toml() -> None:
    checked = 0
    for name, (kind, value, key) in constants().items():
        if kind == "contract":
            assert value == contract_value(key), (
                f"{name} = {value!r}, contract {key} = {contract_value(key)!r}"
            )
            assert type(value) is type(contract_value(key)), (
                f"{name}: type differs from {key}"
            )
            checked += 1
    assert checked >= len(REQUIRED)


@pytest.mark.parametrize(("name", "key"), sorted(REQUIRED.items()))
def test_required_contract_values_are_checked_constants(name: str, key: str) -> None:
    kind, _, note = constants()[name]
    assert (kind, note) == ("contract", key)


def test_recovery_overlap_is_the_contract_value() -> None:
    _, value, _ = constants()["RECOVERY_OVERLAP_MS"]
    assert value == CONTRACT["protocol"]["recovery_overlap_ms"]


def test_constants_are_used_from_contract_js_only() -> None:
    """Other files import the constants instead of repeating their values."""
    literals = set()
    for kind, value, _ in constants().values():
        if kind == "contract":
            literals.add(json.dumps(value) if isinstance(value, str) else str(value))
    # 1000 is also ms per second, which the client converts with: a unit, not a setting.
    literals -= {"1000"}
    literals |= {'"/api/', "'/api/", "`/api/", "'/ws'", "`/ws"}
    for path in client_files(".js", ".html"):
        if path == CONSTANTS_FILE:
            continue
        text = path.read_text()
        for literal in literals:
            pattern = (
                re.escape(literal)
                if not literal.isdigit()
                else rf"(?<![\w.]){literal}(?![\w.])"
            )
            assert not re.search(pattern, text), f"{path.name} hardcodes {literal}"
    used = {
        "chat.js": [
            "RECOVERY_OVERLAP_MS",
            "RECOVERY_RECHECK_MS",
            "PAGE_LIMIT_MAX",
            "PAGE_LIMIT_DEFAULT",
            "MESSAGES_PATH",
        ],
        "connection.js": ["WS_PATH"],
    }
    for name, needed in used.items():
        text = (CLIENT / name).read_text()
        for constant in needed:
            assert re.search(rf"\b{constant}\b", text), (
                f"{name} does not use {constant}"
            )


# The one absolute URL allowed: an XML namespace name, never fetched.
NAMESPACES = ['xmlns="http://www.w3.org/2000/svg"']


@pytest.mark.parametrize(
    "path", client_files(".html", ".js", ".css", ".svg"), ids=lambda p: p.name
)
def test_no_absolute_url_and_no_port(path: Path) -> None:
    text = path.read_text()
    for namespace in NAMESPACES:
        text = text.replace(namespace, "")
    absolute = re.findall(r"\b(?:wss?|https?):/+[^\s\"'`)]*", text)
    assert absolute == [], f"{path.name}: absolute URL {absolute}"
    assert not re.search(r"\b(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1?\])", text), (
        path.name
    )
    ports = {str(port) for port in CONTRACT["ports"].values()}
    for port in ports:
        assert not re.search(rf"(?<![\w.]){port}(?![\w.])", text), (
            f"{path.name}: port {port}"
        )
    host_port = re.findall(r"[\w\]]:\d{2,5}\b", text)
    assert host_port == [], f"{path.name}: host:port {host_port}"
    assert "location.port" not in text, f"{path.name} builds URLs from a port"


def test_websocket_url_follows_location_protocol() -> None:
    text = (CLIENT / "connection.js").read_text()
    assert re.search(
        r'\b(?:loc|location)\.protocol\s*===\s*"https:"\s*\?\s*"wss:"\s*:\s*"ws:"', text
    )
    assert "${loc.host}${WS_PATH}" in text


def test_index_html_has_no_inline_code_or_style() -> None:
    """The CSP (script-src 'self'; style-src 'self') would block it."""
    html = (CLIENT / "index.html").read_text()
    scripts = re.findall(
        r"<script\b[^>]*>(.*?)</script>", html, flags=re.DOTALL | re.IGNORECASE
    )
    assert scripts and all(body.strip() == "" for body in scripts), "inline script"
    assert all(
        'type="module"' in tag and "src=" in tag
        for tag in re.findall(r"<script\b[^>]*>", html)
    )
    assert not re.search(r"<style\b", html, flags=re.IGNORECASE), "inline <style>"
    assert not re.search(r"\sstyle\s*=", html, flags=re.IGNORECASE), "style attribute"
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.IGNORECASE), (
        "inline event handler"
    )
    assert "javascript:" not in html.lower()


@pytest.mark.parametrize("path", client_files(".js"), ids=lambda p: p.name)
def test_text_reaches_the_page_as_text(path: Path) -> None:
    # Whole-line comments may name the sinks they avoid.
    text = re.sub(r"(?m)^\s*//.*$", "", path.read_text())
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("style"',
    ):
        assert sink not in text, f"{path.name} uses {sink}"
    imports = re.findall(
        r'^\s*import\b[^;]*?from\s+"([^"]+)"', text, flags=re.MULTILINE
    )
    assert all(spec.startswith("./") and spec.endswith(".js") for spec in imports), (
        imports
    )


def test_dom_ids_used_by_the_script_are_documented_and_present() -> None:
    html = (CLIENT / "index.html").read_text()
    comment = html.split("-->", 1)[0]
    present = set(re.findall(r'(?<![\w-])id="([^"]+)"', html))
    used = set()
    for path in client_files(".js"):
        text = path.read_text()
        used |= set(re.findall(r'(?:byId|getElementById)\("([^"]+)"\)', text))
    assert used, "chat.js looks its controls up with byId()"
    assert used <= present, f"missing in index.html: {used - present}"
    for dom_id in present:
        assert f"#{dom_id}" in comment, (
            f"#{dom_id} not documented at the top of index.html"
        )


def test_links_open_safely() -> None:
    """linkify.js: new tab without opener or referrer, only http(s) hrefs."""
    text = (CLIENT / "linkify.js").read_text()
    assert 'link.rel = "noopener noreferrer"' in text
    assert 'url.protocol === "http:" || url.protocol === "https:"' in text


def test_client_msg_ids_match_the_pattern() -> None:
    """chat.js builds `<16 hex>-<n>`; the pattern must accept that shape."""
    pattern = re.compile(CONTRACT["protocol"]["client_msg_id_pattern"])
    assert "`${session}-${sayCounter}`" in (CLIENT / "chat.js").read_text()
    assert pattern.fullmatch("0123456789abcdef-1") and pattern.fullmatch(
        "ffffffffffffffff-99999"
    )


def test_every_join_carries_a_client_token_of_the_pattern() -> None:
    """chat.js sends the page's secret with each join: 16 random bytes in base64url without
    padding (22 characters, 128 bits); the pattern must accept exactly that shape."""
    import base64
    import os

    script = (CLIENT / "chat.js").read_text()
    joins = re.findall(r"\{ type: \"join\",[^}]*\}", script)
    assert joins and all("client_token: clientToken" in j for j in joins), joins
    assert "crypto.getRandomValues(new Uint8Array(16))" in script
    pattern = re.compile(CONTRACT["protocol"]["client_token_pattern"])
    for _ in range(50):
        token = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        assert len(token) == 22 and pattern.fullmatch(token), token
    assert not pattern.fullmatch("0123456789abcdef")  # 64 bits is too few
