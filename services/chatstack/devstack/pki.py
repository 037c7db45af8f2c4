"""A throw-away PKI for the local stack and the tests, made with the openssl CLI.

One CA, a server certificate for the broker (SANs ``localhost`` and ``127.0.0.1`` by
default, so both names verify) and, when asked, a client certificate. Private keys are
created 0600 and never leave the state directory given by the caller. EC P-256 keys:
small, fast to make, and accepted by Erlang's ssl (RabbitMQ) and Python's ssl (pika).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_HOSTS = ("localhost", "127.0.0.1")
VALID_DAYS = 30  # long enough for a dev stack left running, short enough to be obviously throw-away


@dataclass(frozen=True)
class Pki:
    """Paths of the generated files."""

    directory: Path
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path | None = None
    client_key: Path | None = None


def make_pki(
    directory: Path, *, hosts: tuple[str, ...] = DEFAULT_HOSTS, client: bool = False
) -> Pki:
    """Create (or reuse, if complete) the CA, server and optional client certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found: install it with `apt-get install -y openssl`")
    if not hosts:
        raise ValueError("make_pki: at least one host name or address is needed for the SANs")
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        directory=directory,
        ca_file=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem" if client else None,
        client_key=directory / "client.key" if client else None,
    )
    if not pki.ca_file.exists():
        _run(
            openssl, "req", "-x509", "-new", "-noenc", "-days", str(VALID_DAYS),
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-keyout", str(directory / "ca.key"), "-out", str(pki.ca_file),
            "-subj", "/CN=chatstack local stack CA (throw-away)",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
    if not pki.server_cert.exists():
        _issue(openssl, directory, "server", hosts[0], _san(hosts), "serverAuth")
    if client and pki.client_cert is not None and not pki.client_cert.exists():
        _issue(openssl, directory, "client", "chatstack-client", None, "clientAuth")
    for key in directory.glob("*.key"):
        key.chmod(0o600)
    for cert in directory.glob("*.pem"):
        cert.chmod(0o644)  # certificates are public; openssl ran under umask 077
    return pki


def _san(hosts: tuple[str, ...]) -> str:
    entries = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            entries.append(f"IP:{host}")
        except ValueError:
            entries.append(f"DNS:{host}")
    return ",".join(entries)


def _issue(
    openssl: str, directory: Path, name: str, common_name: str, san: str | None, usage: str
) -> None:
    """Key + CSR + certificate signed by the CA; the CSR is deleted afterwards."""
    ext = directory / f"{name}.ext"
    lines = ["basicConstraints=critical,CA:FALSE", f"extendedKeyUsage={usage}",
             "keyUsage=critical,digitalSignature,keyAgreement"]  # fmt: skip
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    csr = directory / f"{name}.csr"
    _run(
        openssl, "req", "-new", "-noenc",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-keyout", str(directory / f"{name}.key"), "-out", str(csr),
        "-subj", f"/CN={common_name}",
    )  # fmt: skip
    _run(
        openssl, "x509", "-req", "-in", str(csr), "-days", str(VALID_DAYS),
        "-CA", str(directory / "ca.pem"), "-CAkey", str(directory / "ca.key"),
        "-CAcreateserial", "-extfile", str(ext), "-out", str(directory / f"{name}.pem"),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


def _run(*argv: str) -> None:
    # umask 077: keys are never readable by others, not even for the instant before chmod.
    result = subprocess.run(argv, capture_output=True, text=True, umask=0o077, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} failed ({result.returncode}): {result.stderr.strip()}"
        )
    log.debug("%s: ok", " ".join(argv[:3]))


def fingerprint(cert: Path) -> str:
    """SHA-256 fingerprint, for status lines (never print keys)."""
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", os.fspath(cert)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip().split("=", 1)[1]
