"""tools/fleet-secrets, tested without Nix: throwaway keys, real `age` and `openssl`.

Each test fleet is the repository's nix/fleet.toml (its [secrets] table included) with the
admin and host keys replaced by keys made here, so the real secret definitions are exercised.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ssh_keys import ssh_keypair

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "fleet-secrets"
FLEET = REPO / "nix" / "fleet.toml"
SECRETS_DIR = REPO / "nix" / "secrets"

NEEDED = ("age", "age-keygen", "ssh-keygen", "openssl")
missing = [tool for tool in NEEDED if shutil.which(tool) is None]
if missing:
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            f"CI needs {', '.join(missing)} (apt install age openssh-client openssl)"
        )
    pytestmark = pytest.mark.skip(reason=f"needs {', '.join(missing)}")

REPO_FLEET = tomllib.loads(FLEET.read_text(encoding="utf-8"))
SECRET_NAMES = sorted(REPO_FLEET["secrets"])
SSH_KEY_NAMES = sorted(
    n for n, s in REPO_FLEET["secrets"].items() if s["kind"] == "ssh-ed25519"
)


def run_tool(
    *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def sh(*args: str | Path, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        [str(a) for a in args], input=stdin, capture_output=True, check=True
    ).stdout


@dataclass
class Fleet:
    root: Path  # a fake repository (has .git)
    fleet: Path
    out: Path
    keys: Path  # outside the repository
    host_roles: dict[str, str]

    def args(self) -> list[str | Path]:
        return ["--fleet", self.fleet, "--out", self.out]

    def decrypt(self, name: str, identity: str) -> bytes | None:
        """Cleartext of <name>.age with an identity ("admin" or a host name), None if denied."""
        key = self.keys / ("admin.key" if identity == "admin" else identity)
        done = subprocess.run(
            ["age", "--decrypt", "-i", str(key), str(self.out / f"{name}.age")],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            assert b"no identity matched" in done.stderr, done.stderr
            return None
        return done.stdout

    def cleartexts(self) -> dict[str, bytes]:
        values = {name: self.decrypt(name, "admin") for name in SECRET_NAMES}
        assert all(v is not None for v in values.values())
        return values  # type: ignore[return-value]

    def add_host(self, name: str, role: str, address: str) -> None:
        key = ssh_keypair(self.keys / name)
        with self.fleet.open("a", encoding="utf-8") as f:
            f.write(
                f'\n[hosts.{name}]\nrole = "{role}"\naddress = "{address}"\nhost_key = "{key}"\n'
            )
        self.host_roles[name] = role


def make_fleet(base: Path) -> Fleet:
    """The repository's fleet.toml with fresh keys, in a fake repository under `base`."""
    root, keys = base / "repo", base / "keys"
    (root / ".git").mkdir(parents=True)
    keys.mkdir()
    sh("age-keygen", "-o", keys / "admin.key")
    admin = re.search(r"age1[0-9a-z]+", (keys / "admin.key").read_text())
    assert admin is not None
    text = re.sub(r'(?m)^(ops = )"[^"]*"', f'\\1"{admin.group(0)}"', FLEET.read_text())
    roles = {name: host["role"] for name, host in REPO_FLEET["hosts"].items()}
    for name in roles:
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", keys / name)
        key = (keys / f"{name}.pub").read_text().strip()
        pattern = rf'(?ms)^(\[hosts\.{re.escape(name)}\].*?^host_key = )"[^"]*"'
        # A base64 key has no backslash, so it is safe in a replacement string.
        text, count = re.subn(pattern, r'\g<1>"' + key + '"', text, count=1)
        assert count == 1, name
    fleet = root / "nix" / "fleet.toml"
    fleet.parent.mkdir(parents=True)
    fleet.write_text(text, encoding="utf-8")
    return Fleet(root, fleet, root / "nix" / "secrets", keys, roles)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fleet, list[str]]:
    """One generated set (RSA keys take a moment); tests that change it use `fresh`."""
    fleet = make_fleet(tmp_path_factory.mktemp("fleet"))
    done = run_tool("generate", *fleet.args(), "--ca-key-out", fleet.keys / "ca.pem")
    assert done.returncode == 0, done.stderr
    return fleet, [done.stdout + done.stderr]


@pytest.fixture
def fresh(generated: tuple[Fleet, list[str]], tmp_path: Path) -> Fleet:
    """A private copy of the generated fleet and its secrets."""
    fleet, _ = generated
    shutil.copytree(fleet.root, tmp_path / "repo")
    shutil.copytree(fleet.keys, tmp_path / "keys")
    return Fleet(
        tmp_path / "repo",
        tmp_path / "repo" / "nix" / "fleet.toml",
        tmp_path / "repo" / "nix" / "secrets",
        tmp_path / "keys",
        dict(fleet.host_roles),
    )


def pem_public_key(command: list[str], pem: bytes) -> bytes:
    return sh(*command, stdin=pem)


# --------------------------------------------------------------------------- generate


def test_every_secret_is_written_and_only_encrypted_files(
    generated: tuple[Fleet, list[str]],
) -> None:
    fleet, _ = generated
    assert sorted(p.name for p in fleet.out.iterdir()) == sorted(
        [f"{n}.age" for n in SECRET_NAMES] + [f"{n}.pub" for n in SSH_KEY_NAMES]
    )
    for path in fleet.out.glob("*.age"):
        assert path.read_bytes().startswith(b"age-encryption.org/v1\n")
    # The only cleartext files are public keys.
    for path in fleet.out.glob("*.pub"):
        assert re.fullmatch(
            rb"ssh-ed25519 [A-Za-z0-9+/=]+ [a-z0-9-]+\n", path.read_bytes()
        )


def test_ssh_key_secret_is_a_private_key_matching_its_public_half(
    generated: tuple[Fleet, list[str]], tmp_path: Path
) -> None:
    fleet, _ = generated
    assert SSH_KEY_NAMES, "fleet.toml has no ssh-ed25519 secret (hydra-deploy-key)"
    for name in SSH_KEY_NAMES:
        private = fleet.decrypt(name, "admin")
        assert private is not None
        # (split so that the repository's private-key scanner does not match this line)
        assert private.startswith(b"-----BEGIN OPENSSH " + b"PRIVATE KEY-----")
        key = tmp_path / name
        key.write_bytes(private)
        key.chmod(0o600)
        derived = sh("ssh-keygen", "-y", "-f", key).split()[:2]
        assert (fleet.out / f"{name}.pub").read_bytes().split()[:2] == derived


def test_rotating_an_ssh_key_replaces_both_halves(fresh: Fleet) -> None:
    name = SSH_KEY_NAMES[0]
    before = (fresh.out / f"{name}.pub").read_bytes()
    done = run_tool("rotate", name, *fresh.args())
    assert done.returncode == 0, done.stderr
    after = (fresh.out / f"{name}.pub").read_bytes()
    assert after != before
    private = fresh.decrypt(name, "admin")
    assert private is not None
    key = fresh.keys / "rotated"
    key.write_bytes(private)
    key.chmod(0o600)
    assert sh("ssh-keygen", "-y", "-f", key).split()[:2] == after.split()[:2]
    (fresh.out / f"{name}.pub").unlink()
    done = run_tool("verify", *fresh.args())
    assert done.returncode == 1 and f"{name}.pub: missing" in done.stderr


def test_each_host_decrypts_exactly_the_secrets_of_its_role(
    generated: tuple[Fleet, list[str]],
) -> None:
    fleet, _ = generated
    for host, role in fleet.host_roles.items():
        readable = {n for n in SECRET_NAMES if fleet.decrypt(n, host) is not None}
        expected = {
            n for n in SECRET_NAMES if role in REPO_FLEET["secrets"][n]["roles"]
        }
        assert readable == expected, host
    # The admin reads everything; the load balancer gets no secret at all.
    assert all(fleet.decrypt(n, "admin") is not None for n in SECRET_NAMES)
    assert not any(fleet.decrypt(n, "lb") is not None for n in SECRET_NAMES)


def test_values_have_the_expected_form(generated: tuple[Fleet, list[str]]) -> None:
    fleet, _ = generated
    values = fleet.cleartexts()
    passwords = [
        values[n]
        for n in SECRET_NAMES
        if REPO_FLEET["secrets"][n]["kind"] == "password"
    ]
    assert len(passwords) == 2 and passwords[0] != passwords[1]
    for password in passwords:
        assert re.fullmatch(rb"[0-9a-f]{48}", password)
    assert re.fullmatch(rb"[A-Z0-9]{32}", values["rabbitmq-erlang-cookie"])


def test_broker_certificate_is_signed_by_the_ca_for_the_mq_host(
    generated: tuple[Fleet, list[str]], tmp_path: Path
) -> None:
    fleet, _ = generated
    values = fleet.cleartexts()
    ca, cert = tmp_path / "ca.crt", tmp_path / "broker.crt"
    ca.write_bytes(values["amqp-ca-cert"])
    cert.write_bytes(values["rabbitmq-tls-cert"])
    assert b"CA:TRUE" in sh("openssl", "x509", "-noout", "-text", "-in", ca)
    sh("openssl", "verify", "-CAfile", ca, cert)
    text = sh("openssl", "x509", "-noout", "-text", "-in", cert).decode()
    mq = REPO_FLEET["hosts"]["mq"]
    assert f"DNS:mq, IP Address:{mq['address']}" in text
    assert "TLS Web Server Authentication" in text
    # The key in rabbitmq-tls-key is the certificate's key.
    from_key = pem_public_key(
        ["openssl", "pkey", "-pubout"], values["rabbitmq-tls-key"]
    )
    from_cert = pem_public_key(
        ["openssl", "x509", "-pubkey", "-noout"], values["rabbitmq-tls-cert"]
    )
    assert from_key == from_cert


def test_ca_key_is_kept_outside_the_repository_only(
    generated: tuple[Fleet, list[str]],
) -> None:
    fleet, _ = generated
    bundle = fleet.keys / "ca.pem"
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert fleet.root not in bundle.parents
    ca_key = sh("openssl", "pkey", "-in", bundle)
    assert b"PRIVATE KEY" in ca_key
    for value in fleet.cleartexts().values():
        assert ca_key.strip() not in value
    # Nothing but the .age files and public keys was written under the repository.
    written = sorted(
        p.relative_to(fleet.root) for p in fleet.root.rglob("*") if p.is_file()
    )
    assert written == sorted(
        [Path("nix/fleet.toml")]
        + [Path("nix/secrets") / f"{n}.age" for n in SECRET_NAMES]
        + [Path("nix/secrets") / f"{n}.pub" for n in SSH_KEY_NAMES]
    )


def test_nothing_secret_is_printed(generated: tuple[Fleet, list[str]]) -> None:
    fleet, outputs = generated
    printed = "".join(outputs)
    assert "wrote" in printed
    for value in fleet.cleartexts().values():
        for line in value.decode().splitlines():
            if "-----" not in line and line.strip():
                assert line not in printed


def test_refuses_to_overwrite_without_force(fresh: Fleet) -> None:
    before = {p.name: p.read_bytes() for p in fresh.out.iterdir()}
    done = run_tool("generate", *fresh.args(), "--discard-ca-key")
    assert done.returncode == 1
    assert "would overwrite" in done.stderr and "--force" in done.stderr
    assert {p.name: p.read_bytes() for p in fresh.out.iterdir()} == before

    done = run_tool("generate", *fresh.args(), "--discard-ca-key", "--force")
    assert done.returncode == 0, done.stderr
    after = {p.name: p.read_bytes() for p in fresh.out.iterdir()}
    assert after.keys() == before.keys()
    assert all(after[n] != before[n] for n in before)


def test_ca_key_inside_the_repository_is_refused(fresh: Fleet, tmp_path: Path) -> None:
    shutil.rmtree(fresh.out)
    for inside in (fresh.root / "ca.pem", fresh.out / "ca.pem"):
        done = run_tool("generate", *fresh.args(), "--ca-key-out", inside)
        assert done.returncode == 1
        assert "outside the repository" in done.stderr
        assert not inside.exists()
    assert not fresh.out.exists() or not any(fresh.out.iterdir())


def test_the_ca_key_needs_an_explicit_choice(fresh: Fleet) -> None:
    shutil.rmtree(fresh.out)
    done = run_tool("generate", *fresh.args())
    assert done.returncode == 1
    assert "--ca-key-out" in done.stderr and "--discard-ca-key" in done.stderr


# --------------------------------------------------------------------------- fleet.toml errors

Edit = Callable[[str], str]
BAD_FLEETS: list[tuple[str, Edit, str]] = [
    ("invalid TOML", lambda t: t + "\n[hosts.mq\n", "invalid TOML"),
    (
        "missing host key",
        lambda t: re.sub(r'(?ms)(\[hosts\.mq\].*?)^host_key = "[^"]*"\n', r"\1", t),
        "hosts.mq.host_key: expected a non-empty string",
    ),
    (
        "host key is not an SSH key",
        lambda t: re.sub(
            r'(?ms)(\[hosts\.mq\].*?^host_key = )"[^"]*"', r'\1"not-a-key"', t
        ),
        "hosts.mq.host_key: expected an SSH public key",
    ),
    (
        "unknown role",
        lambda t: t.replace('roles = ["mq"]', 'roles = ["broker"]', 1),
        "no host has role 'broker'",
    ),
    (
        "unknown kind",
        lambda t: t.replace('kind = "erlang-cookie"', 'kind = "cookie"'),
        "secrets.rabbitmq-erlang-cookie.kind: 'cookie' is not one of",
    ),
    (
        "no admins",
        lambda t: re.sub(r'(?m)^ops = "[^"]*"\n', "", t),
        "admins: expected a non-empty table",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message"), [b[1:] for b in BAD_FLEETS], ids=[b[0] for b in BAD_FLEETS]
)
def test_bad_fleet_toml_is_a_clear_error(
    fresh: Fleet, edit: Edit, message: str
) -> None:
    fresh.fleet.write_text(edit(fresh.fleet.read_text()), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in fresh.out.iterdir()}
    done = run_tool("generate", *fresh.args(), "--discard-ca-key", "--force")
    assert done.returncode == 2
    assert done.stderr.startswith(f"fleet-secrets: error: {fresh.fleet}: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in fresh.out.iterdir()} == before


# --------------------------------------------------------------------------- rotate, rekey, verify


def test_rotate_one_password(fresh: Fleet) -> None:
    before = fresh.cleartexts()
    done = run_tool("rotate", "amqp-gateway-password", *fresh.args())
    assert done.returncode == 0, done.stderr
    after = fresh.cleartexts()
    assert after["amqp-gateway-password"] != before["amqp-gateway-password"]
    assert {n: v for n, v in after.items() if n != "amqp-gateway-password"} == {
        n: v for n, v in before.items() if n != "amqp-gateway-password"
    }
    assert (
        fresh.decrypt("amqp-gateway-password", "app-1")
        == after["amqp-gateway-password"]
    )


def test_rotate_broker_certificate_keeps_the_ca(fresh: Fleet, tmp_path: Path) -> None:
    done = run_tool("rotate", "rabbitmq-tls-cert", *fresh.args())
    assert done.returncode == 1 and "--ca-key" in done.stderr

    before = fresh.cleartexts()
    done = run_tool(
        "rotate", "rabbitmq-tls-cert", *fresh.args(), "--ca-key", fresh.keys / "ca.pem"
    )
    assert done.returncode == 0, done.stderr
    after = fresh.cleartexts()
    assert after["amqp-ca-cert"] == before["amqp-ca-cert"]
    assert after["rabbitmq-tls-cert"] != before["rabbitmq-tls-cert"]
    assert after["rabbitmq-tls-key"] != before["rabbitmq-tls-key"]
    (tmp_path / "ca.crt").write_bytes(after["amqp-ca-cert"])
    (tmp_path / "b.crt").write_bytes(after["rabbitmq-tls-cert"])
    sh("openssl", "verify", "-CAfile", tmp_path / "ca.crt", tmp_path / "b.crt")


def test_rotate_the_ca_reissues_the_broker_certificate(fresh: Fleet) -> None:
    before = fresh.cleartexts()
    done = run_tool("rotate", "amqp-ca-cert", *fresh.args(), "--discard-ca-key")
    assert done.returncode == 0, done.stderr
    after = fresh.cleartexts()
    changed = {n for n in SECRET_NAMES if after[n] != before[n]}
    assert changed == {"amqp-ca-cert", "rabbitmq-tls-cert", "rabbitmq-tls-key"}


def test_verify_and_rekey_follow_the_host_table(fresh: Fleet) -> None:
    assert run_tool("verify", *fresh.args()).returncode == 0
    before = fresh.cleartexts()

    fresh.add_host("app-3", "app", "10.0.0.13")
    done = run_tool("verify", *fresh.args())
    assert done.returncode == 1
    assert "amqp-gateway-password.age: recipients differ" in done.stderr
    assert "rekey" in done.stderr
    assert fresh.decrypt("amqp-gateway-password", "app-3") is None

    done = run_tool("rekey", *fresh.args(), "--identity", fresh.keys / "admin.key")
    assert done.returncode == 0, done.stderr
    assert run_tool("verify", *fresh.args()).returncode == 0
    assert fresh.cleartexts() == before
    assert (
        fresh.decrypt("amqp-gateway-password", "app-3")
        == before["amqp-gateway-password"]
    )
    assert fresh.decrypt("amqp-history-password", "app-3") is None


def test_verify_reports_missing_and_unlisted_files(fresh: Fleet) -> None:
    (fresh.out / "amqp-history-password.age").unlink()
    (fresh.out / "old-secret.age").write_bytes(b"age-encryption.org/v1\n--- x\n")
    done = run_tool("verify", *fresh.args())
    assert done.returncode == 1
    assert "amqp-history-password.age: missing" in done.stderr
    assert "old-secret.age: not listed" in done.stderr


def test_repository_secrets_match_the_host_table() -> None:
    """The committed example secrets are encrypted to exactly the recipients fleet.toml lists."""
    done = run_tool("verify", cwd=REPO)
    assert done.returncode == 0, done.stderr
    listed = {f"{n}.age" for n in SECRET_NAMES}
    assert {p.name for p in SECRETS_DIR.glob("*.age")} == listed
