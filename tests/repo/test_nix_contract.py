"""The Nix side reads only names that exist in contract.toml, from the file the package ships.

The NixOS modules and host files (modules/, nix/) read the contract through
``nix/contract.nix`` and use it as ``contract.<section>.<key>...``. This test finds every such
attribute path in the Nix code (comments and string text skipped, ``${...}`` code inside
strings kept) and fails when one does not exist in services/chatstack/contract.toml, so a
renamed or removed contract entry breaks here, not at deploy time. It needs plain Python
only (no Nix). A fabricated missing name is checked to be reported, so the test cannot pass
by finding nothing.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "services" / "chatstack" / "contract.toml"
CONTRACT_NIX = ROOT / "nix" / "contract.nix"
NIX_DIRS = (ROOT / "modules", ROOT / "nix")


# --- a small Nix lexer: the code of a file, without comments and string text ---------------


def nix_code(text: str) -> str:
    """``text`` with comments removed and string literals blanked, except:

    - code inside ``${...}`` in strings is kept (it may read the contract);
    - a double-quoted string without interpolation is kept verbatim, so quoted attribute
      names (``contract.metrics."gateway.ready"``) survive.
    """
    out: list[str] = []
    n = len(text)

    def code(i: int, nested: bool) -> int:
        depth = 0
        while i < n:
            c = text[i]
            if c == "#":
                while i < n and text[i] != "\n":
                    i += 1
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                i = n if end < 0 else end + 2
            elif c == '"':
                i = double_quoted(i + 1)
            elif text.startswith("''", i):
                i = indented(i + 2)
            else:
                if c == "{":
                    depth += 1
                elif c == "}":
                    if nested and depth == 0:
                        out.append(" ")
                        return i + 1  # the end of a ${...} interpolation
                    depth -= 1
                out.append(c)
                i += 1
        return i

    def double_quoted(i: int) -> int:
        literal: list[str] = []
        interpolated = False
        while i < n:
            c = text[i]
            if c == "\\":
                literal.append(text[i : i + 2])
                i += 2
            elif text.startswith("${", i):
                interpolated = True
                out.append(" ")
                i = code(i + 2, nested=True)
            elif c == '"':
                out.append(" " if interpolated else '"' + "".join(literal) + '"')
                return i + 1
            else:
                literal.append(c)
                i += 1
        return i

    def indented(i: int) -> int:
        while i < n:
            if text.startswith("'''", i) or text.startswith("''$", i):
                i += 3  # an escaped '' or ${
            elif text.startswith("''\\", i):
                i += 4  # an escaped character
            elif text.startswith("''", i):
                out.append(" ")
                return i + 2
            elif text.startswith("${", i):
                out.append(" ")
                i = code(i + 2, nested=True)
            else:
                out.append("\n" if text[i] == "\n" else " ")
                i += 1
        return i

    code(0, nested=False)
    return "".join(out)


_ATTR = r'(?:[A-Za-z_][A-Za-z0-9_\'-]*|"[^"\\$]*")'
_PATH = re.compile(r"(?<![A-Za-z0-9_.'/-])contract((?:\s*\.\s*" + _ATTR + r")+)")


def contract_paths(code: str) -> list[tuple[str, ...]]:
    """Every ``contract.a.b...`` attribute path in lexed Nix code, as tuples of names."""
    paths = []
    for match in _PATH.finditer(code):
        parts = re.findall(_ATTR, match.group(1))
        paths.append(tuple(p[1:-1] if p.startswith('"') else p for p in parts))
    return paths


def missing(contract: dict[str, object], path: tuple[str, ...]) -> str | None:
    """The first prefix of ``path`` that is not in ``contract``, dotted; None when all exist."""
    node: object = contract
    for depth, name in enumerate(path):
        if not isinstance(node, dict) or name not in node:
            return ".".join(path[: depth + 1])
        node = node[name]
    return None


def nix_files() -> list[Path]:
    return sorted(p for d in NIX_DIRS for p in d.rglob("*.nix"))


def all_references() -> dict[tuple[str, ...], list[str]]:
    refs: dict[tuple[str, ...], list[str]] = {}
    for path in nix_files():
        for ref in contract_paths(nix_code(path.read_text(encoding="utf-8"))):
            refs.setdefault(ref, []).append(str(path.relative_to(ROOT)))
    return refs


@pytest.fixture(scope="module")
def contract() -> dict[str, object]:
    return tomllib.loads(CONTRACT.read_text(encoding="utf-8"))


# --- the checks -------------------------------------------------------------------------------


def test_every_contract_name_the_nix_side_reads_exists(
    contract: dict[str, object],
) -> None:
    refs = all_references()
    # Not vacuous: the modules read ports, routes, AMQP names, proxy settings and metrics.
    assert len(refs) >= 20, sorted(refs)
    for section in (
        "ports",
        "routes",
        "amqp",
        "proxy",
        "metrics",
        "statsd",
        "websocket",
    ):
        assert any(ref[0] == section for ref in refs), (
            f"no contract.{section}.* found in Nix code"
        )
    problems = [
        f"contract.{missing(contract, ref)} (read as contract.{'.'.join(ref)} in {', '.join(files)})"
        for ref, files in sorted(refs.items())
        if missing(contract, ref) is not None
    ]
    assert not problems, (
        "names the Nix code reads but contract.toml lacks:\n" + "\n".join(problems)
    )


def test_a_fabricated_missing_name_is_reported(contract: dict[str, object]) -> None:
    code = nix_code(
        """
        { lib, ... }:
        let
          contract = import ../nix/contract.nix; # contract.comment.is_ignored
          text = "contract.plain.string is ignored ${toString contract.ports.no_such_port}";
          block = ''
            contract.indented.text is ignored, ''${literal} too: ${contract.amqp.vhost}
          '';
        in
        [ contract.amqp.no_such_key contract.metrics."no.such.metric".type contract.ports.gateway ]
        """
    )
    refs = contract_paths(code)
    assert ("ports", "no_such_port") in refs
    assert ("amqp", "vhost") in refs
    assert ("metrics", "no.such.metric", "type") in refs
    assert not any(ref[0] in ("comment", "plain", "indented") for ref in refs), refs
    reported = {missing(contract, ref) for ref in refs} - {None}
    assert reported == {
        "ports.no_such_port",
        "amqp.no_such_key",
        "metrics.no.such.metric",
    }


def test_nix_reads_the_contract_file_the_python_package_ships() -> None:
    code = nix_code(CONTRACT_NIX.read_text(encoding="utf-8"))
    read = re.findall(r"builtins\.readFile\s+([./A-Za-z0-9_-]+)", code)
    assert len(read) == 1, (
        f"nix/contract.nix should read exactly one file, reads {read}"
    )
    assert (CONTRACT_NIX.parent / read[0]).resolve() == CONTRACT.resolve()

    # The package data: the wheel/sdist include it, and chatstack.contract reads the file
    # named CONTRACT_FILE next to itself (importlib.resources of its own package).
    pyproject = tomllib.loads(
        (ROOT / "services" / "pyproject.toml").read_text(encoding="utf-8")
    )
    includes = pyproject["tool"]["poetry"].get("include", [])
    paths = [entry["path"] if isinstance(entry, dict) else entry for entry in includes]
    assert "chatstack/contract.toml" in paths, paths
    source = (CONTRACT.parent / "contract.py").read_text(encoding="utf-8")
    assert re.search(r'^CONTRACT_FILE = "contract\.toml"$', source, re.MULTILINE)
    assert "resources.files(__package__).joinpath(CONTRACT_FILE)" in source


def test_only_nix_contract_nix_names_the_contract_file() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in nix_files()
        if path != CONTRACT_NIX
        and re.search(r"contract\.toml", nix_code(path.read_text("utf-8")))
    ]
    assert not offenders, (
        f"read the contract through nix/contract.nix, not directly: {offenders}"
    )
