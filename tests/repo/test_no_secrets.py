"""No private key or password in the repository, outside test fixtures under tests/**/test-keys/.

Scans every file git tracks, plus new files git does not ignore (so a key is caught before it is
committed). Encrypted agenix files (*.age) are the one place secrets are meant to live.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from ssh_keys import ssh_keypair

REPO = Path(__file__).resolve().parents[2]

# What counts as secret material, by name. Patterns are bytes: binary files are scanned too.
PATTERNS: dict[str, re.Pattern[bytes]] = {
    # PEM: "PRIVATE KEY", "RSA PRIVATE KEY", "EC ...", "ENCRYPTED ...", "OPENSSH ..." (ssh-keygen).
    "PEM private key": re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "PuTTY private key": re.compile(rb"PuTTY-User-Key-File-\d+:"),
    # age identities (age-keygen) and plugin identities.
    # Split so this scanner's own source is not a match for simpler scanners (the repo hook).
    "age identity": re.compile(rb"AGE-SECRET-" rb"KEY-1[02-9AC-HJ-NP-Z]{58}"),
    "age plugin identity": re.compile(rb"AGE-PLUGIN-[A-Z0-9]+-1[02-9AC-HJ-NP-Z]+"),
    # A literal value for a password-like key in TOML, Nix, YAML, INI, JSON or env files.
    # `password_file = "..."` does not match: the key must end right before `=` or `:`.
    "password literal": re.compile(
        rb"""(?ix)
        (?<![a-z0-9_])(?:password|passwd|secret|erlang_cookie|api_key|token)
        ["']?\s*[:=]\s*["']([^"'\s]{8,})["']"""
    ),
    # Credentials inside a URL: amqps://user:<password>@host.
    "password in URL": re.compile(
        rb"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:([^@\s/\"']{4,})@"
    ),
}

# Values that are obviously not secrets: templating, placeholders, and the wrong passwords tests
# use on purpose (`password="not-the-password"`).
PLACEHOLDER = re.compile(
    rb"(?i)^(?:\$|\{|<|%)|example|changeme|change-me|placeholder|xxx|dummy|fake|wrong|not-the"
)

FIXTURE_DIR = re.compile(r"(?:^|/)tests/(?:.*/)?test-keys/")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def repository_files(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def exempt(path: str) -> bool:
    return path.endswith(".age") or FIXTURE_DIR.search(path) is not None


def scan(root: Path, files: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    for rel in files:
        path = root / rel
        if exempt(rel) or not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        for kind, pattern in PATTERNS.items():
            for match in pattern.finditer(data):
                value = match.group(match.lastindex or 0)
                if match.lastindex and PLACEHOLDER.search(value):
                    continue
                findings.append(
                    Finding(rel, data.count(b"\n", 0, match.start()) + 1, kind)
                )
    return findings


def test_repository_has_no_private_keys_or_passwords() -> None:
    files = repository_files(REPO)
    assert "flake.nix" in files or "Makefile" in files, "not scanning the repository?"
    findings = scan(REPO, files)
    assert not findings, "secret material outside tests/**/test-keys/:\n" + "\n".join(
        map(str, findings)
    )


# --------------------------------------------------------------------------- the scanner itself


def keygen(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {tool} to plant test secrets")
        pytest.skip(f"needs {tool}")


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A git repository with one planted secret per kind, and harmless look-alikes."""
    for tool in ("git", "ssh-keygen", "age-keygen", "openssl"):
        keygen(tool)
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "deploy").mkdir()
    ssh_keypair(root / "deploy/id")
    subprocess.run(
        ["age-keygen", "-o", str(root / "admin.txt")], check=True, capture_output=True
    )
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(root / "broker.pem")],
        check=True,
    )  # fmt: skip
    # Built from pieces so this file itself does not hold the planted values.
    (root / "service.toml").write_text(
        "[amqp]\n" + "password" + ' = "Tr0ub4dor-and-3"\n'
    )
    (root / "env").write_text(
        "BROKER_URL=amqps://gateway:" + "s3cr3t-value" + "@mq:5671/chat\n"
    )
    # Look-alikes that must not be reported:
    (root / "ok.toml").write_text(
        '[amqp]\npassword_file = "/run/credentials/gateway.password"\n'
        'password = "${AMQP_PASSWORD}"\nurl = "amqps://mq.example.com:5671/chat"\n'
    )
    fixtures = root / "tests" / "vm" / "test-keys"
    fixtures.mkdir(parents=True)
    shutil.copy(root / "deploy/id", fixtures / "host_ed25519")
    (root / "secret.age").write_bytes((root / "broker.pem").read_bytes())
    # One of them only staged (not committed), one untracked: both are found.
    subprocess.run(
        ["git", "add", "deploy", "admin.txt", "tests", "ok.toml"], cwd=root, check=True
    )
    return root


def test_scanner_finds_planted_secrets(planted: Path) -> None:
    findings = scan(planted, repository_files(planted))
    found = {(f.path, f.kind) for f in findings}
    assert found == {
        ("deploy/id", "PEM private key"),
        ("admin.txt", "age identity"),
        ("broker.pem", "PEM private key"),
        ("service.toml", "password literal"),
        ("env", "password in URL"),
    }


def test_scanner_ignores_gitignored_files(planted: Path) -> None:
    (planted / ".gitignore").write_text("/local/\n")
    (planted / "local").mkdir()
    shutil.copy(planted / "deploy/id", planted / "local/id")
    assert not any(
        f.path.startswith("local/") for f in scan(planted, repository_files(planted))
    )
