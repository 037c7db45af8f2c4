"""The NixOS VM tests (tests/vm/), checked as far as this machine can without Nix or KVM.

- Every test script passes the NixOS test driver's own build-time checks (mypy against the
  driver's types, pyflakes with the driver's globals) through ../shared/vmcheck, which needs
  the driver's third-party sources in ~/.cache/nixpkgs-subset: without them (CI cannot have
  them) the check skips and says so.
- The test fleet is laid out as the NixOS test framework numbers its nodes, its secrets table
  is production's, and every test secret decrypts with the committed test host key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VM = REPO / "tests" / "vm"
VMCHECK = REPO.parent / "shared" / "vmcheck" / "check.sh"
SUBSET = Path(
    os.environ.get("VMCHECK_SUBSET", Path.home() / ".cache" / "nixpkgs-subset")
)
DRIVER = SUBSET / "nixos" / "lib" / "test-driver" / "src" / "test_driver"
TESTS = sorted(p.stem for p in VM.glob("*.nix") if p.name != "fleet.nix")
# The tests whose nodes are the fleet's (./fleet.nix); vm-deploy has nodes of its own.
FLEET_TESTS = [
    n for n in TESTS if "import ./fleet.nix" in (VM / f"{n}.nix").read_text()
]
TEST_FLEET = tomllib.loads((VM / "fleet.toml").read_text(encoding="utf-8"))
FLEET = tomllib.loads((REPO / "nix" / "fleet.toml").read_text(encoding="utf-8"))


def test_the_issue_s_five_tests_exist_each_with_its_script() -> None:
    assert {"chat", "failover", "broker-restart", "security", "observability"} <= set(
        FLEET_TESTS
    )
    assert "deploy" in TESTS
    for name in TESTS:
        module = (VM / f"{name}.nix").read_text()
        assert f"testScript = builtins.readFile ./{name}.py;" in module, name
        assert (VM / f"{name}.py").is_file(), name
        # Plain test modules: no skipped driver checks, no bare sleeps in the script.
        assert "skipLint" not in module and "skipTypeCheck" not in module, name
        script = (VM / f"{name}.py").read_text()
        assert not re.search(r"\b(time\.)?sleep\(", script), f"{name}.py sleeps"


@pytest.mark.parametrize("name", TESTS)
def test_vmcheck(name: str) -> None:
    if not VMCHECK.is_file():
        pytest.skip(f"vmcheck is not at {VMCHECK} (the shared developer tools)")
    if not (DRIVER / "machine" / "__init__.py").is_file():
        pytest.skip(
            f"the NixOS test driver's sources are not in {SUBSET} (third-party, never "
            f"committed; see {VMCHECK.parent / 'FILES.txt'}): vmcheck cannot run here"
        )
    done = subprocess.run(
        [str(VMCHECK), "--nodes-from", f"tests/vm/{name}.nix", f"tests/vm/{name}.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == f"vmcheck: {name}.py: OK", done.stdout


def node_names(test: str) -> list[str]:
    text = (VM / f"{test}.nix").read_text()
    block = text[text.index("nodes = {") : text.index("};", text.index("nodes = {"))]
    return re.findall(r"^\s+([A-Za-z0-9_-]+) = ", block, re.MULTILINE)


@pytest.mark.parametrize("name", FLEET_TESTS)
def test_fleet_addresses_are_the_test_framework_s(name: str) -> None:
    """nixos/lib/testing/network.nix: node N in sorted name order is 192.168.1.N."""
    nodes = sorted(node_names(name))
    assert set(TEST_FLEET["hosts"]) < set(nodes), nodes
    for number, node in enumerate(nodes, 1):
        if node in TEST_FLEET["hosts"]:
            assert TEST_FLEET["hosts"][node]["address"] == f"192.168.1.{number}", node


def test_test_fleet_has_production_s_roles_and_secrets() -> None:
    # The chat fleet's roles; the CI host (role ci) is vm-deploy's business, not these tests'.
    chat_hosts = [h for h in FLEET["hosts"].values() if h["role"] != "ci"]
    assert sorted(h["role"] for h in TEST_FLEET["hosts"].values()) == sorted(
        h["role"] for h in chat_hosts
    )
    roles = {h["role"] for h in chat_hosts}
    assert TEST_FLEET["secrets"] == {
        name: secret
        for name, secret in FLEET["secrets"].items()
        if roles & set(secret["roles"])
    }
    # The deploy user can log in (an assertion of the host code requires a key).
    assert TEST_FLEET["ssh_authorized_keys"], "the test fleet needs an authorized key"


def test_every_test_secret_decrypts_with_the_test_host_key() -> None:
    if shutil.which("age") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("age is missing: CI must install it")
        pytest.skip("age not installed (apt install age)")
    keys = VM / "test-keys"
    host_key = (keys / "ssh_host_ed25519_key.pub").read_text().strip()
    assert all(h["host_key"] == host_key for h in TEST_FLEET["hosts"].values())
    secrets = sorted(keys.glob("*.age"))
    assert {p.stem for p in secrets} == {*TEST_FLEET["secrets"], "lb-tls-key"}
    for secret in secrets:
        subprocess.run(
            ["age", "--decrypt", "-i", str(keys / "ssh_host_ed25519_key"), str(secret)],
            capture_output=True,
            check=True,
        )


NIXPKGS_LIB = (
    Path(os.environ.get("NIXEVAL_SUBSET", Path.home() / ".cache" / "nixpkgs-subset"))
    / "lib"
)


@pytest.mark.parametrize("name", FLEET_TESTS)
def test_test_module_evaluates(name: str) -> None:
    """With nixpkgs' lib: the module's name, nodes (the fleet's, by the same names) and the
    script text runNixOSTest gets. nixeval evaluates the node configurations themselves."""
    nix = shutil.which("nix-instantiate")
    if nix is None or not (NIXPKGS_LIB / "default.nix").is_file():
        if nix is None and os.environ.get("CI") == "true":
            pytest.fail("nix-instantiate is missing: CI must install Debian's nix-bin")
        pytest.skip(f"needs nix-instantiate and a nixpkgs lib at {NIXPKGS_LIB}")
    expr = (
        f"let t = import {VM / (name + '.nix')} {{ lib = import {NIXPKGS_LIB}; }}; in"
        " { inherit (t) name testScript; nodes = builtins.attrNames t.nodes;"
        "   fleetNodes = builtins.attrNames"
        f"     (import {VM / 'fleet.nix'} {{ lib = import {NIXPKGS_LIB}; }}).nodes; }}"
    )
    done = subprocess.run(
        [nix, "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    module = json.loads(done.stdout)
    assert module["name"] == f"chatstack-{name}"
    assert module["nodes"] == module["fleetNodes"] == sorted(node_names(name))
    assert module["testScript"] == (VM / f"{name}.py").read_text()
