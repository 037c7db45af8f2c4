"""hydra/spec.json against what Hydra accepts in a static declarative spec.

Sources (NixOS/hydra):
- src/lib/Hydra/Helper/AddBuilds.pm, validateDeclarativeJobset: the only jobset keys taken
  from a spec (`@allowed_keys`); `inputs` is read separately; any other key left over is the
  error "invalid keys ... in declarative specification file". type 0 = Nix expression
  (nixexprinput/nixexprpath), type 1 = flake (`flake`). `enable_dynamic_run_command`, when
  present at all, needs dynamic RunCommand enabled on the server and the project.
- doc/manual/src/plugins/declarative-projects.md: the spec is an object of objects (one per
  jobset; any non-object value makes Hydra treat the file as a *generated* spec), and its
  example gives each key's JSON type (enabled 1, hidden false, checkinterval 300,
  schedulingshares 100, enableemail false, emailoverride "", keepnr 3, inputs {...}).
- src/sql/hydra.sql, table Jobsets: enabled 0 = disabled, 1 = enabled, 2 = one-shot;
  checkinterval in seconds (0 = no polling); check (schedulingShares > 0).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC_FILE = REPO / "hydra" / "spec.json"
FLEET = tomllib.loads((REPO / "nix" / "fleet.toml").read_text(encoding="utf-8"))

# validateDeclarativeJobset's @allowed_keys, with the JSON type Hydra's docs give each; plus
# `inputs`, which updateDeclarativeJobset reads on its own.
ALLOWED_KEYS: dict[str, type | tuple[type, ...]] = {
    "enabled": int,
    "hidden": bool,
    "type": int,
    "flake": str,
    "description": str,
    "nixexprinput": str,
    "nixexprpath": str,
    "checkinterval": int,
    "schedulingshares": int,
    "enableemail": bool,
    "enable_dynamic_run_command": bool,
    "emailoverride": str,
    "keepnr": int,
    "inputs": dict,
}
# What a flake jobset of ours must say (the rest falls back to Hydra's column defaults).
REQUIRED = (
    "enabled",
    "type",
    "flake",
    "checkinterval",
    "schedulingshares",
    "keepnr",
    "inputs",
)

SPEC: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def problems(name: str, jobset: Any) -> list[str]:
    """Everything Hydra would reject, or that would not be a flake jobset, in one jobset."""
    if not isinstance(jobset, dict):
        return [
            f"{name}: not an object (Hydra would read the file as a generated spec)"
        ]
    found = [
        f"{name}: unknown key {k!r}" for k in sorted(set(jobset) - set(ALLOWED_KEYS))
    ]
    found += [f"{name}: missing {k!r}" for k in REQUIRED if k not in jobset]
    for key, value in jobset.items():
        expected = ALLOWED_KEYS.get(key)
        # bool is an int in Python; Hydra's integer columns want a number, not true/false.
        wrong_bool = isinstance(value, bool) and expected is int
        if expected is not None and (not isinstance(value, expected) or wrong_bool):
            found.append(f"{name}.{key}: {value!r} is not {expected}")
    if found:
        return found
    if jobset["type"] != 1:
        found.append(f"{name}.type: {jobset['type']} is not 1 (flake)")
    if "nixexprinput" in jobset or "nixexprpath" in jobset:
        found.append(f"{name}: nixexpr* keys belong to type 0 jobsets")
    if jobset["inputs"] != {}:
        found.append(f"{name}.inputs: a flake jobset takes its inputs from flake.lock")
    if jobset["enabled"] not in (0, 1, 2):
        found.append(f"{name}.enabled: {jobset['enabled']} is not 0, 1 or 2")
    if jobset["schedulingshares"] <= 0:
        found.append(f"{name}.schedulingshares must be > 0")
    if jobset["checkinterval"] < 0 or jobset["keepnr"] < 0:
        found.append(f"{name}: checkinterval and keepnr are counts (>= 0)")
    if "enable_dynamic_run_command" in jobset:
        found.append(f"{name}: dynamic RunCommand is not enabled on our Hydra")
    return found


def test_spec_is_a_static_spec_of_main_and_staging() -> None:
    assert sorted(SPEC) == ["main", "staging"]


@pytest.mark.parametrize("name", sorted(SPEC))
def test_every_jobset_is_a_flake_jobset_hydra_accepts(name: str) -> None:
    assert problems(name, SPEC[name]) == []


@pytest.mark.parametrize("name", sorted(SPEC))
def test_jobset_evaluates_its_branch_of_the_repository_in_fleet_toml(name: str) -> None:
    # The deploy hook deploys `<ci.repository>?rev=<evaluated rev>`: the same repository.
    assert SPEC[name]["flake"] == f"{FLEET['ci']['repository']}?ref={name}"


def test_main_is_favoured_and_polled_more_often_than_staging() -> None:
    main, staging = SPEC["main"], SPEC["staging"]
    assert main["schedulingshares"] > staging["schedulingshares"]
    assert main["checkinterval"] < staging["checkinterval"]
    assert main["enableemail"] and "@" in main["emailoverride"]


@pytest.mark.parametrize(
    ("jobset", "expected"),
    [
        ({**SPEC["main"], "checkInterval": 60}, "unknown key 'checkInterval'"),
        ({**SPEC["main"], "enabled": True}, "enabled: True is not"),
        ({**SPEC["main"], "keepnr": "3"}, "keepnr: '3' is not"),
        ({**SPEC["main"], "type": 0}, "is not 1 (flake)"),
        ({**SPEC["main"], "schedulingshares": 0}, "schedulingshares must be > 0"),
        ({k: v for k, v in SPEC["main"].items() if k != "flake"}, "missing 'flake'"),
        ("git+https://example", "not an object"),
    ],
    ids=[
        "unknown",
        "bool-for-int",
        "string-for-int",
        "type-0",
        "zero-shares",
        "no-flake",
        "str",
    ],
)
def test_the_checker_rejects_what_hydra_rejects(jobset: Any, expected: str) -> None:
    assert any(expected in p for p in problems("main", jobset))


SUBSET = Path(
    os.environ.get("NIXEVAL_SUBSET", Path.home() / ".cache" / "nixpkgs-subset")
)


def ci_module_defaults() -> dict[str, str]:
    """modules/ci.nix's deploy defaults, evaluated with nixpkgs' lib (the nixeval subset)."""
    nix = shutil.which("nix-instantiate")
    if nix is None or not (SUBSET / "lib" / "default.nix").is_file():
        if os.environ.get("CI") == "true" and nix is None:
            pytest.fail("nix-instantiate is missing: CI must install Debian's nix-bin")
        pytest.skip(f"needs nix-instantiate and a nixpkgs lib at {SUBSET / 'lib'}")
    expr = (
        f"let lib = import {SUBSET / 'lib'}; "
        f"m = import {REPO / 'modules' / 'ci.nix'} {{ config = {{ }}; inherit lib; pkgs = {{ }}; }}; "
        "d = m.options.services.chatstack.ci.deploy; in "
        "{ project = d.project.default; jobset = d.jobset.default; job = d.job.default; "
        "state = d.stateDirectory.default; }"
    )
    out = subprocess.run(
        [nix, "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=True,
    )
    defaults: dict[str, str] = json.loads(out.stdout)
    return defaults


def test_the_hook_deploys_a_job_of_a_jobset_this_spec_defines() -> None:
    defaults = ci_module_defaults()
    assert defaults["project"] == "chatstack"
    assert defaults["jobset"] in SPEC
    assert defaults["job"] == "release"  # hydraJobs.release (nix/hydra-jobs.nix)
    # The operator commands in the READMEs name the hook's real state directory.
    for doc in (REPO / "README.md", REPO / "hydra" / "README.md"):
        text = doc.read_text(encoding="utf-8")
        assert f"{defaults['state']}/stop" in text, doc
        assert f"{defaults['state']}/live.json" in text, doc
