"""Nix checks that run on any Linux with Debian's nix-bin (no nixpkgs, no network).

- Every .nix file in the repository parses (`nix-instantiate --parse`).
- The pure parts evaluate: nix/secrets/secrets.nix gives the recipients fleet.toml implies (and
  what tools/fleet-secrets uses), flake.nix's inputs are the ones flake.lock was made for.
- With a nixpkgs `lib/` at hand ($NIXEVAL_SUBSET/lib, the copy ../shared/nixeval uses), the
  output plumbing under nix/ is evaluated with stub packages: module list, checks, hydraJobs,
  deploy nodes, host configurations.
- With poetry2nix's source at the locked revision ($POETRY2NIX_SRC), nix/package.nix is evaluated
  against poetry2nix's real mk-poetry-dep.nix: every locked package of the build resolves to a
  wheel that our fetcher downloads (docs/deploying.md, "poetry2nix").

When CI=true, a missing nix-instantiate fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FLEET = tomllib.loads((REPO / "nix" / "fleet.toml").read_text(encoding="utf-8"))
SUBSET = Path(
    os.environ.get("NIXEVAL_SUBSET", Path.home() / ".cache" / "nixpkgs-subset")
)
NIXPKGS_LIB = SUBSET / "lib"
POETRY2NIX_SRC = os.environ.get("POETRY2NIX_SRC")
P2N_REV = "ce2369db77f45688172384bbeb962bc6c2ea6f94"


def nix_files() -> list[str]:
    out = subprocess.run(
        [
            "git",
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "*.nix",
        ],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return sorted({p for p in out.decode().split("\0") if p and (REPO / p).is_file()})


@pytest.fixture(scope="session")
def nix_instantiate() -> str:
    found = shutil.which("nix-instantiate")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nix-instantiate is missing: CI must install Debian's nix-bin")
        pytest.skip("nix-instantiate not installed (apt install nix-bin)")
    return found


def nix_eval(nix: str, expr: str, cwd: Path = REPO, **args: str) -> Any:
    cmd = [nix, "--eval", "--strict", "--json", "--read-write-mode"]
    for name, value in args.items():
        cmd += ["--argstr", name, value]
    done = subprocess.run(
        [*cmd, "-E", expr], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- parsing


def test_the_flake_and_nix_dir_are_scanned() -> None:
    files = nix_files()
    assert "flake.nix" in files and "nix/secrets/secrets.nix" in files


@pytest.mark.parametrize("path", nix_files())
def test_parses(nix_instantiate: str, path: str) -> None:
    done = subprocess.run(
        [nix_instantiate, "--parse", path],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- secrets.nix


def expected_recipients() -> dict[str, list[str]]:
    """Every admin key, then the host keys of the secret's roles (hosts by name)."""
    admins = [FLEET["admins"][name] for name in sorted(FLEET["admins"])]
    hosts = [FLEET["hosts"][name] for name in sorted(FLEET["hosts"])]
    return {
        f"{name}.age": admins
        + [h["host_key"] for h in hosts if h["role"] in secret["roles"]]
        for name, secret in FLEET["secrets"].items()
    }


def test_secrets_nix_recipients_follow_fleet_toml(nix_instantiate: str) -> None:
    rules = nix_eval(nix_instantiate, "import ./nix/secrets/secrets.nix")
    assert {f: r["publicKeys"] for f, r in rules.items()} == expected_recipients()


def test_secrets_nix_works_the_way_the_agenix_cli_reads_it(
    nix_instantiate: str,
) -> None:
    # pkgs/agenix.sh (agenix b027ee29): `keys` and `rekey` run these expressions in the
    # directory of the rules file.
    secrets_dir = REPO / "nix" / "secrets"
    names = nix_eval(
        nix_instantiate,
        "(let rules = import ./secrets.nix; in builtins.attrNames rules)",
        secrets_dir,
    )
    assert names == sorted(expected_recipients())
    for name in names:
        keys = nix_eval(
            nix_instantiate,
            f'(let rules = import ./secrets.nix; in rules."{name}".publicKeys)',
            secrets_dir,
        )
        assert keys == expected_recipients()[name]
        assert (secrets_dir / name).is_file()


def test_fleet_secrets_command_agrees_with_secrets_nix(nix_instantiate: str) -> None:
    done = subprocess.run(
        [sys.executable, "tools/fleet-secrets", "recipients", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rules = nix_eval(nix_instantiate, "import ./nix/secrets/secrets.nix")
    assert json.loads(done.stdout) == {f: r["publicKeys"] for f, r in rules.items()}


# --------------------------------------------------------------------------- flake.nix / flake.lock


def test_flake_inputs_match_the_lock(nix_instantiate: str) -> None:
    """flake.nix's inputs are exactly what flake.lock was made for (else Nix re-locks)."""
    inputs = nix_eval(nix_instantiate, "(import ./flake.nix).inputs")
    lock = json.loads((REPO / "flake.lock").read_text())
    assert lock["version"] == 7
    nodes = lock["nodes"]
    root = nodes[lock["root"]]["inputs"]
    assert set(inputs) == set(root)
    for name, spec in inputs.items():
        node = nodes[root[name]]
        original = node["original"]
        url = f"github:{original['owner']}/{original['repo']}"
        if "ref" in original:
            url += f"/{original['ref']}"
        assert spec["url"] == url, name
        follows = {k: v["follows"] for k, v in spec.get("inputs", {}).items()}
        for dep, target in follows.items():
            assert node["inputs"][dep] == ([] if target == "" else target.split("/")), (
                name,
                dep,
            )
        # Every input of the node that is not overridden is a locked node of its own.
        for dep, ref in node.get("inputs", {}).items():
            if dep not in follows:
                assert isinstance(ref, str) and "locked" in nodes[ref], (name, dep)
        assert node["locked"]["type"] == "github" and len(node["locked"]["rev"]) == 40


def test_nix_accepts_the_lock_offline(tmp_path: Path) -> None:
    """`nix flake metadata` with --no-update-lock-file: Nix would re-lock (and need the network)
    if flake.nix's inputs differed from the lock in any way. It only reads flake.nix and the
    lock, so a copy of the two is enough."""
    nix = shutil.which("nix")
    if nix is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nix is missing: CI must install Debian's nix-bin")
        pytest.skip("nix not installed (apt install nix-bin)")
    for name in ("flake.nix", "flake.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    flakes = [nix, "--extra-experimental-features", "nix-command flakes", "--offline"]
    done = subprocess.run(
        [
            *flakes,
            "flake",
            "metadata",
            "--no-update-lock-file",
            "--json",
            f"path:{tmp_path}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["locks"] == json.loads(
        (REPO / "flake.lock").read_text()
    )
    assert (tmp_path / "flake.lock").read_bytes() == (REPO / "flake.lock").read_bytes()


def test_flake_outputs_are_one_line_imports() -> None:
    text = (REPO / "flake.nix").read_text()
    body = text[text.index("outputs = inputs: {") :]
    lines = [
        line.strip()
        for line in body.splitlines()[1:]
        if line.strip() not in ("", "};", "}")
    ]
    assert lines, "no outputs found"
    for line in lines:
        assert "= import ./nix/" in line and line.endswith(" inputs;"), line


# --------------------------------------------------------------------------- output plumbing

# The VM tests: every tests/vm/*.nix but the shared node wiring.
VM_TESTS = sorted(
    p.stem for p in (REPO / "tests" / "vm").glob("*.nix") if p.name != "fleet.nix"
)
VM_CHECKS = [f"vm-{name}" for name in VM_TESTS]

needs_lib = pytest.mark.skipif(
    not (NIXPKGS_LIB / "default.nix").is_file(),
    reason=f"no nixpkgs lib at {NIXPKGS_LIB} (set NIXEVAL_SUBSET; see ../shared/nixeval)",
)

# Stub flake inputs: real nixpkgs lib, fake derivations, the repository's own nix/ files.
STUBS = r"""
{ repo, libPath, stubNixpkgs }:
let
  lib = import libPath;
  drv = name: { type = "derivation"; inherit name; outPath = "/nix/store/00000000-${name}"; };
  systems = [ "x86_64-linux" "aarch64-linux" ];
  fleet = lib.importTOML (repo + "/nix/fleet.toml");
  hostNames = lib.attrNames fleet.hosts;
  nixpkgs = {
    outPath = stubNixpkgs;
    lib = lib // {
      nixosSystem = args: {
        system = args.system or null;
        modules = map (m: if builtins.isAttrs m then m else "<module>") args.modules;
        config.system.build.toplevel = drv "nixos-system";
      };
    };
    legacyPackages.x86_64-linux.deploy-rs = "deploy-rs from nixpkgs";
  };
  deploy-rs = {
    lib.x86_64-linux.deployChecks = deploy: {
      deploy-schema = drv "schema-${toString (lib.attrNames deploy.nodes)}";
      deploy-activate = drv "activate";
    };
    overlays.default = final: prev: {
      deploy-rs = {
        deploy-rs = "deploy-rs built from its flake";
        lib.activate.nixos = cfg: {
          activates = cfg.config.system.build.toplevel.name;
          activateRs = final.deploy-rs.deploy-rs;
        };
      };
    };
  };
  agenix.nixosModules.default = { agenix = true; };
  self = {
    outPath = repo;
    rev = "0123456789abcdef0123456789abcdef01234567";
    lastModified = 1780000000;
    overlays.default = final: prev: { };
    packages = lib.genAttrs systems (s: {
      chatstack = drv "chatstack-${s}";
      chat-client-demo = drv "client-${s}";
      fleet-secrets = drv "fleet-secrets-${s}";
      default = drv "chatstack-${s}";
    });
    nixosModules = import (repo + "/nix/modules.nix") inputs;
    # The mq host has RabbitMQ's start timeout, for deploy's activationTimeout.
    nixosConfigurations = lib.genAttrs hostNames (n: {
      config.system.build.toplevel = drv "host-${n}";
      config.systemd.services = lib.optionalAttrs (fleet.hosts.${n}.role == "mq") {
        rabbitmq.serviceConfig.TimeoutStartSec = 3600;
      };
    });
    deploy = import (repo + "/nix/deploy.nix") inputs;
    checks = import (repo + "/nix/checks.nix") inputs;
  };
  inputs = { inherit self nixpkgs deploy-rs agenix; };
  hydraJobs = import (repo + "/nix/hydra-jobs.nix") inputs;
in
{
  inherit inputs lib;
  modules = lib.mapAttrs (_: m: if builtins.isAttrs m then lib.attrNames m else toString m)
    self.nixosModules;
  checks = lib.mapAttrs (_: lib.attrNames) self.checks;
  hydraJobs = let
      names = v: if v.type or "" == "derivation" then v.name else lib.mapAttrs (_: names) v;
    in names (removeAttrs hydraJobs [ "release" ]) // {
      release = {
        inherit (hydraJobs.release) name;
        constituents = map (d: d.name) hydraJobs.release.constituents;
      };
    };
  deployPlan = builtins.fromJSON hydraJobs.deploy-plan.text;
  deploy = self.deploy;
}
"""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the stub file and a stub `import nixpkgs { system; overlays; }`."""
    root = tmp_path_factory.mktemp("stubs")
    (root / "stubs.nix").write_text(STUBS)
    nixpkgs = root / "nixpkgs"
    nixpkgs.mkdir()
    # Just enough of nixpkgs for hydra-jobs.nix: the two builders `release` uses, with
    # releaseTools.aggregate's interface (pkgs/build-support/release/default.nix).
    (nixpkgs / "default.nix").write_text(
        f"{{ system, overlays ? [ ] }}:\nlet lib = import {NIXPKGS_LIB};\n"
        """
  builders = {
    writeTextFile = { name, text, destination ? "" }:
      { type = "derivation"; inherit name text destination; };
    releaseTools.aggregate = { name, constituents, meta ? { } }:
      { type = "derivation"; _hydraAggregate = true; inherit name constituents meta; };
    # A VM test is a derivation named after the test module it was given.
    testers.runNixOSTest = test:
      { type = "derivation"; name = "vm-${baseNameOf (builtins.head test.imports)}"; };
  };
in
lib.fix (lib.foldl' (f: o: lib.extends o f) (_: { inherit system; } // builders) overlays)
"""
    )
    return root


def stub_eval(nix: str, stubs: Path, attr: str) -> Any:
    expr = (
        f"(import {stubs}/stubs.nix {{ repo = {REPO}; libPath = {NIXPKGS_LIB}; "
        f"stubNixpkgs = {stubs}/nixpkgs; }}).{attr}"
    )
    return nix_eval(nix, expr)


@needs_lib
def test_nixos_modules_are_every_module_file_plus_default(
    nix_instantiate: str, stubs: Path
) -> None:
    modules = stub_eval(nix_instantiate, stubs, "modules")
    roles = sorted(
        p.stem
        for p in (REPO / "modules").glob("*.nix")
        if p.name not in ("lib.nix", "default.nix")
    )
    assert roles, "no modules yet"
    assert sorted(modules) == sorted([*roles, "default"])
    for name in [*roles, "default"]:
        assert modules[name] == str(REPO / "modules" / f"{name}.nix")
    # `default` (modules/default.nix) imports every role module.
    imports = nix_eval(
        nix_instantiate, "map toString (import ./modules/default.nix).imports"
    )
    assert sorted(imports) == sorted(
        str(REPO / "modules" / f"{name}.nix") for name in roles
    )


@needs_lib
def test_checks_per_system(nix_instantiate: str, stubs: Path) -> None:
    checks = stub_eval(nix_instantiate, stubs, "checks")
    packages = [
        "package-chat-client-demo",
        "package-chatstack",
        "package-fleet-secrets",
    ]
    hosts = [f"host-{n}" for n in FLEET["hosts"]]
    assert sorted(checks["aarch64-linux"]) == packages
    assert sorted(checks["x86_64-linux"]) == sorted(
        [*packages, *hosts, "deploy-activate", "deploy-schema", *VM_CHECKS]
    )


@needs_lib
def test_hydra_jobs_are_group_name_system(nix_instantiate: str, stubs: Path) -> None:
    jobs = stub_eval(nix_instantiate, stubs, "hydraJobs")
    assert sorted(jobs) == [
        "checks",
        "deploy-plan",
        "hosts",
        "packages",
        "release",
        "vm-tests",
    ]
    # One job per VM test, x86_64-linux only, each the test module of its name.
    assert jobs["vm-tests"] == {
        name: {"x86_64-linux": f"vm-{name}.nix"} for name in VM_TESTS
    }
    assert jobs["packages"]["chatstack"] == {
        "x86_64-linux": "chatstack-x86_64-linux",
        "aarch64-linux": "chatstack-aarch64-linux",
    }
    assert "default" not in jobs["packages"]
    assert {n: j for n, j in jobs["hosts"].items()} == {
        n: {"x86_64-linux": f"host-{n}"} for n in FLEET["hosts"]
    }
    # Checks that are packages, hosts or VM tests already are not repeated.
    assert sorted(jobs["checks"]) == ["deploy-activate", "deploy-schema"]
    assert list(jobs["checks"]["deploy-schema"]) == ["x86_64-linux"]


@needs_lib
def test_release_gates_on_every_x86_64_check_and_carries_the_deploy_plan(
    nix_instantiate: str, stubs: Path
) -> None:
    jobs = stub_eval(nix_instantiate, stubs, "hydraJobs")
    checks = stub_eval(nix_instantiate, stubs, "checks")
    rev = "0123456789abcdef0123456789abcdef01234567"  # the stub flake's self.rev
    # hydra/deploy-hook matches these names (RELEASE_NAME, PLAN_NAME).
    assert jobs["release"]["name"] == f"chatstack-release-{rev}"
    assert jobs["deploy-plan"] == f"chatstack-deploy-plan-{rev}"
    constituents = jobs["release"]["constituents"]
    assert constituents[0] == f"chatstack-deploy-plan-{rev}"
    # Every x86_64-linux check, whatever its name (vm-* included once they exist).
    assert len(constituents) == 1 + len(checks["x86_64-linux"])
    for host in FLEET["hosts"]:
        assert f"host-{host}" in constituents
    assert "chatstack-x86_64-linux" in constituents and "activate" in constituents
    for name in VM_TESTS:
        assert f"vm-{name}.nix" in constituents
    plan = stub_eval(nix_instantiate, stubs, "deployPlan")
    assert plan["revision"] == rev and plan["lastModified"] == 1780000000
    assert [s["role"] for s in plan["steps"]] == sorted(
        (s["role"] for s in plan["steps"]), key=FLEET["deploy_order"].index
    )
    assert {s["node"] for s in plan["steps"]} == {
        n for n, h in FLEET["hosts"].items() if h["role"] in FLEET["deploy_order"]
    }


@needs_lib
def test_deploy_nodes(nix_instantiate: str, stubs: Path) -> None:
    deploy = stub_eval(nix_instantiate, stubs, "deploy")
    assert sorted(deploy) == ["nodes"]
    assert sorted(deploy["nodes"]) == sorted(FLEET["hosts"])
    for name, node in deploy["nodes"].items():
        assert node["hostname"] == FLEET["hosts"][name]["address"]
        assert node["sshUser"] == FLEET["ssh_user"]
        assert node["user"] == "root"
        assert node["magicRollback"] is True and node["autoRollback"] is True
        # Derived from the host's units (nix/lib.nix; tests/repo/test_nix_eval.py).
        mq = FLEET["hosts"][name]["role"] == "mq"
        assert node["activationTimeout"] == (60 + 3600 if mq else 240)
        assert sorted(node["profiles"]) == ["system"]
        # The activation uses nixpkgs' deploy-rs binary, not a build of deploy-rs's flake.
        assert node["profiles"]["system"]["path"] == {
            "activates": f"host-{name}",
            "activateRs": "deploy-rs from nixpkgs",
        }


@needs_lib
@pytest.mark.skipif(
    not (REPO / "nix" / "hosts" / "default.nix").is_file(),
    reason="nix/hosts/default.nix not written yet",
)
def test_every_host_of_the_table_is_a_nixos_configuration(
    nix_instantiate: str, stubs: Path
) -> None:
    expr = (
        "let s = import ./stubs.nix; in "
        "builtins.mapAttrs (_: c: { inherit (c) system; modules = builtins.length c.modules; "
        "platforms = map (m: m.nixpkgs.hostPlatform) "
        "(builtins.filter (m: m ? nixpkgs.hostPlatform) c.modules); }) "
        f"(import {REPO}/nix/nixos-configurations.nix "
        f"(s {{ repo = {REPO}; libPath = {NIXPKGS_LIB}; "
        f"stubNixpkgs = {stubs}/nixpkgs; }}).inputs)"
    )
    configs = nix_eval(nix_instantiate, expr, cwd=stubs)
    # The platform is the nixpkgs.hostPlatform option, not nixosSystem's legacy `system`.
    assert configs == {
        n: {"system": None, "modules": 4, "platforms": ["x86_64-linux"]}
        for n in FLEET["hosts"]
    }


# --------------------------------------------------------------------------- package.nix

needs_p2n = pytest.mark.skipif(
    POETRY2NIX_SRC is None or not (NIXPKGS_LIB / "default.nix").is_file(),
    reason="set POETRY2NIX_SRC to poetry2nix at "
    + P2N_REV[:8]
    + " (and have a nixpkgs lib)",
)

# nix/package.nix with stub nixpkgs, fed to poetry2nix's real mk-poetry-dep.nix: for every
# package of the build's closure, the file chosen and the fetcher that makes its src.
PACKAGE_EVAL = r"""
{ repo, libPath, p2n, system }:
let
  lib = import libPath;
  pyproject-nix = import (p2n + "/vendor/pyproject.nix") { inherit lib; };
  platform = lib.systems.elaborate system;
  python = {
    pname = "python3"; version = "3.13.9"; pythonVersion = "3.13"; implementation = "cpython";
    sitePackages = "lib/python3.13/site-packages";
    passthru.implementation = "cpython";
    passthru.sourceVersion = { major = "3"; minor = "13"; patch = "9"; suffix = ""; };
    stdenv = {
      targetPlatform = platform; hostPlatform = platform; buildPlatform = platform;
      isLinux = true; isDarwin = false; cc.libc = { pname = "glibc"; version = "2.40"; };
    };
  };
  result = import (repo + "/nix/package.nix") {
    inherit lib;
    pkgs = { };
    fetchurl = args: { fetcher = "nixpkgs fetchurl"; inherit (args) url sha256 passthru; };
    python313 = python;
    poetry2nix.lib.mkPoetry2Nix = _: {
      defaultPoetryOverrides.extend = overlay: overlay;
      mkPoetryApplication = args: { inherit args; outputs = [ "out" ]; out.type = "derivation"; };
      mkPoetryEnv = args: { inherit args; };
    };
  };
  inherit (result) args;
  norm = pyproject-nix.lib.pypa.normalizePackageName;
  lock = lib.listToAttrs
    (map (p: lib.nameValuePair (norm p.name) p) (lib.importTOML args.poetrylock).package);
  pyproject = lib.importTOML args.pyproject;
  realMkPoetryDep = import (p2n + "/mk-poetry-dep.nix") {
    inherit lib pyproject-nix;
    autoPatchelfHook = "autoPatchelfHook";
    python = python // { pkgs.callPackage = _: _: { }; };
    buildPythonPackage = a: a;
    poetryLib = import (p2n + "/lib.nix") {
      inherit lib pyproject-nix; pkgs = { }; inherit (python) stdenv;
    };
    pep508Env = pyproject-nix.lib.pep508.mkEnviron python;
    pyVersion = pyproject-nix.lib.pep440.parseVersion python.version;
    fetchPypiLegacy = throw "fetchPypiLegacy reached";
    # As poetry2nix's `final.callPackage ./mk-poetry-dep.nix` does: from the final package set.
    inherit (final) fetchFromPypi;
  };
  # The package set as poetry2nix composes it (default.nix lines 233-277): its own layer
  # (`prev`), then the user overrides on top.
  prev = {
    fetchFromPypi = throw "poetry2nix's own fetchFromPypi reached";
    mkPoetryDep = realMkPoetryDep;
  };
  layer = args.overrides final prev;
  final = prev // layer;
  pythonPackages = lib.mapAttrs (n: _: n) lock // {
    isPy27 = false; callPackage = f: extra: f extra; wheelUnpackHook = "h"; pypaInstallHook = "h";
  };
  dep = name: final.mkPoetryDep (lock.${name} // {
    inherit (args) preferWheels; inherit pythonPackages;
    pwd = null; source = null; sourceSpec = { };
  });
  roots = map norm (lib.attrNames (removeAttrs pyproject.tool.poetry.dependencies [ "python" ])
    ++ lib.concatMap (g: lib.attrNames pyproject.tool.poetry.group.${g}.dependencies)
      args.checkGroups);
  closure = builtins.genericClosure {
    startSet = map (key: { inherit key; }) roots;
    operator = item: map (key: { inherit key; }) (dep item.key).propagatedBuildInputs;
  };
in
map (item: let d = dep item.key; in {
  name = item.key;
  inherit (d) format;
  inherit (d.src) fetcher url sha256;
  isWheel = d.src.passthru.isWheel;
  lockHashes = map (f: f.hash) lock.${item.key}.files;
}) closure
"""


@needs_p2n
@pytest.mark.parametrize("system", ["x86_64-linux", "aarch64-linux"])
def test_every_locked_package_is_a_wheel_from_our_fetcher(
    nix_instantiate: str, tmp_path: Path, system: str
) -> None:
    (tmp_path / "eval.nix").write_text(PACKAGE_EVAL)
    packages = nix_eval(
        nix_instantiate,
        f"import {tmp_path}/eval.nix {{ repo = {REPO}; libPath = {NIXPKGS_LIB}; "
        f'p2n = {POETRY2NIX_SRC}; system = "{system}"; }}',
    )
    names = {p["name"] for p in packages}
    assert {
        "tornado",
        "pika",
        "python-json-logger",
        "statsd",
        "uvloop",
        "pytest",
        "hypothesis",
    } <= names
    assert not names & {"ruff", "mypy"}, "the dev group must not be built"
    arch = system.split("-")[0]
    for p in packages:
        assert p["format"] == "wheel" and p["isWheel"], p
        assert p["fetcher"] == "nixpkgs fetchurl", p
        assert f"sha256:{p['sha256']}" in p["lockHashes"], p
        file = p["url"].rsplit("/", 1)[1]
        assert file.endswith("-any.whl") or f"_{arch}" in file, p
        assert p["url"].startswith("https://files.pythonhosted.org/packages/"), p
