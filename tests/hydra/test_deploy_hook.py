"""hydra/deploy-hook, run as hydra-notify runs it: a $HYDRA_JSON file, a config, and `deploy`
found on PATH — here a recording stand-in put first on PATH, so every deploy-rs call the hook
makes is checked (arguments, order) without a fleet.

The release build's output is a directory laid out as releaseTools.aggregate writes it
(nix-support/hydra-aggregate-constituents) with the deploy plan constituent next to it. The
plan is what nix/deploy-plan.nix gives for the repository's nix/fleet.toml, evaluated with
nix-instantiate, so the expected host order comes from fleet.toml and nowhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "hydra" / "deploy-hook"
FLEET_TOML = REPO / "nix" / "fleet.toml"
FLAKE = "git+https://git.example.com/chatstack"
REV = "0123456789abcdef0123456789abcdef01234567"
OLDER_REV = "89abcdef0123456789abcdef0123456789abcdef"
COMMIT_TIME = 1_780_000_000

# A `deploy` that records its arguments, fails for the node in $DEPLOY_FAIL_NODE and, while
# $DEPLOY_HOLD exists, waits (so a second run can be started while this one deploys).
STAND_IN = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys, time
    with open(os.environ["DEPLOY_RECORD"], "a") as record:
        record.write(json.dumps(sys.argv[1:]) + "\\n")
    hold = os.environ.get("DEPLOY_HOLD")
    if hold:
        open(hold + ".waiting", "w").close()
        while os.path.exists(hold):
            time.sleep(0.05)
    node = sys.argv[-1].rsplit("#", 1)[1]
    sys.exit(7 if node == os.environ.get("DEPLOY_FAIL_NODE") else 0)
    """
)


def plan_for(revision: str, last_modified: int) -> dict[str, Any]:
    nix = shutil.which("nix-instantiate")
    if nix is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nix-instantiate is missing: CI must install Debian's nix-bin")
        pytest.skip("nix-instantiate not installed (apt install nix-bin)")
    expr = (
        f"import {REPO}/nix/deploy-plan.nix {{ "
        f"fleet = builtins.fromTOML (builtins.readFile {FLEET_TOML}); "
        f'revision = "{revision}"; lastModified = {last_modified}; }}'
    )
    out = subprocess.run(
        [nix, "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=True,
    )
    plan: dict[str, Any] = json.loads(out.stdout)
    return plan


def fleet_order() -> list[str]:
    """The order written out from fleet.toml: deploy_order roles, hosts by name."""
    fleet = tomllib.loads(FLEET_TOML.read_text(encoding="utf-8"))
    return [
        name
        for role in fleet["deploy_order"]
        for name in sorted(fleet["hosts"])
        if fleet["hosts"][name]["role"] == role
    ]


@dataclass
class Run:
    returncode: int
    lines: list[dict[str, Any]]
    deploys: list[list[str]]
    stderr: str

    def events(self) -> list[str]:
        return [line["event"] for line in self.lines]

    def messages(self) -> str:
        return "\n".join(line["message"] for line in self.lines)


class Hydra:
    """A fake store, a config, a state directory and the stand-in deploy for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "store"
        self.store.mkdir()
        self.state = root / "state"
        self.bin = root / "bin"
        self.bin.mkdir()
        deploy = self.bin / "deploy"
        deploy.write_text(STAND_IN.format(python=sys.executable))
        deploy.chmod(0o755)
        self.record = root / "deploys.jsonl"
        self.config = root / "hook.json"
        self.config.write_text(
            json.dumps(
                {
                    "project": "chatstack",
                    "jobset": "main",
                    "job": "release",
                    "flake": FLAKE,
                    "state_dir": str(self.state),
                    "ssh_opts": "-i /run/agenix/hydra-deploy-key",
                }
            )
        )
        self.count = 0

    def release(
        self,
        revision: str = REV,
        last_modified: int = COMMIT_TIME,
        build: int = 100,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A $HYDRA_JSON payload (RunCommand.pm makeJsonPayload) for a release build."""
        self.count += 1
        plan = self.store / f"{self.count:032d}-chatstack-deploy-plan-{revision}"
        plan.mkdir()
        (plan / "deploy-plan.json").write_text(
            json.dumps(plan_for(revision, last_modified))
        )
        out = self.store / f"{self.count:031d}r-chatstack-release-{revision}"
        (out / "nix-support").mkdir(parents=True)
        other = self.store / f"{self.count:031d}p-chatstack-0.1.0"
        (out / "nix-support" / "hydra-aggregate-constituents").write_text(
            f"{other} {plan}\n"
        )
        payload: dict[str, Any] = {
            "event": "buildFinished",
            "build": build,
            "finished": True,
            "timestamp": 1_780_000_100,
            "project": "chatstack",
            "jobset": "main",
            "job": "release",
            "drvPath": f"/nix/store/{'x' * 32}-chatstack-release-{revision}.drv",
            "startTime": 1_780_000_200,
            "stopTime": 1_780_000_300,
            "buildStatus": 0,
            "nixName": f"chatstack-release-{revision}",
            "system": "x86_64-linux",
            "homepage": None,
            "description": None,
            "license": None,
            "outputs": [{"name": "out", "path": str(out)}],
            "products": [],
            "metrics": [],
        }
        payload.update(overrides)
        return payload

    def start(self, payload: dict[str, Any], **env: str) -> subprocess.Popen[str]:
        self.count += 1
        hydra_json = self.root / f"hydra-{self.count}.json"
        hydra_json.write_text(json.dumps(payload))
        environ = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HYDRA_JSON": str(hydra_json),
            "DEPLOY_RECORD": str(self.record),
            **env,
        }
        return subprocess.Popen(
            [sys.executable, str(HOOK), "--config", str(self.config)],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, process: subprocess.Popen[str]) -> Run:
        stdout, stderr = process.communicate(timeout=120)
        lines = [json.loads(line) for line in stdout.splitlines()]
        return Run(process.returncode, lines, self.deploys(), stderr)

    def run(self, payload: dict[str, Any], **env: str) -> Run:
        return self.finish(self.start(payload, **env))

    def deploys(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def live(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "live.json").read_text())
        return data


@pytest.fixture
def hydra(tmp_path: Path) -> Iterator[Hydra]:
    yield Hydra(tmp_path)


def expected_call(node: str, revision: str = REV) -> list[str]:
    return [
        "--skip-checks",
        "--magic-rollback",
        "true",
        "--auto-rollback",
        "true",
        "--ssh-opts",
        "-i /run/agenix/hydra-deploy-key",
        f"{FLAKE}?rev={revision}#{node}",
    ]


def test_green_release_deploys_its_revision_host_by_host_in_fleet_order(
    hydra: Hydra,
) -> None:
    run = hydra.run(hydra.release())

    assert run.returncode == 0, run.messages() + run.stderr
    order = fleet_order()
    assert (
        order[0] == "mq" and order[-1] == "lb" and "app-1" in order
    )  # the fleet's shape
    assert run.deploys == [expected_call(node) for node in order]
    # One JSON line per step, each naming the build, revision and node.
    steps = [line for line in run.lines if line["event"] == "deploy.step.done"]
    assert [s["node"] for s in steps] == order
    assert all(s["revision"] == REV and s["build"] == 100 for s in steps)
    assert run.events()[-1] == "deploy.done"
    assert hydra.live()["revision"] == REV and hydra.live()["build"] == 100


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"buildStatus": 1}, "did not succeed (buildStatus 1)"),
        ({"finished": False, "buildStatus": None}, "has not finished"),
        (
            {"job": "packages.chatstack.x86_64-linux"},
            "chatstack:main:packages.chatstack",
        ),
        ({"jobset": "staging"}, "build of chatstack:staging:release"),
        ({"project": "other"}, "build of other:main:release"),
    ],
    ids=["failed-build", "unfinished", "other-job", "other-jobset", "other-project"],
)
def test_builds_that_are_not_a_green_release_deploy_nothing(
    hydra: Hydra, change: dict[str, Any], reason: str
) -> None:
    run = hydra.run(hydra.release(**change))

    assert run.returncode == 0
    assert run.deploys == []
    assert run.events() == ["deploy.skipped"]
    assert reason in run.messages()
    assert not (hydra.state / "live.json").exists()


def test_older_release_than_the_live_one_is_not_deployed(hydra: Hydra) -> None:
    assert hydra.run(hydra.release(build=200)).returncode == 0
    deployed = len(hydra.deploys())

    # An older build finishing late (e.g. restarted by hand) after a newer one went live.
    run = hydra.run(hydra.release(revision=OLDER_REV, build=150))
    assert run.returncode == 0
    assert "older than the live build 200" in run.messages()
    # A later build of a commit older than the live one (main was reset backwards).
    run = hydra.run(
        hydra.release(revision=OLDER_REV, build=300, last_modified=COMMIT_TIME - 60)
    )
    assert run.returncode == 0
    assert "is older than the live revision" in run.messages()
    # The same build again (Hydra restarted the notification): already live.
    run = hydra.run(hydra.release(build=200))
    assert "already live" in run.messages()

    assert len(hydra.deploys()) == deployed
    assert hydra.live()["build"] == 200 and hydra.live()["revision"] == REV


def test_newer_release_replaces_the_live_one(hydra: Hydra) -> None:
    assert hydra.run(hydra.release(revision=OLDER_REV, build=10)).returncode == 0
    run = hydra.run(hydra.release(build=11, last_modified=COMMIT_TIME + 60))

    assert run.returncode == 0
    assert run.deploys[-1] == expected_call("lb")
    assert hydra.live()["revision"] == REV


def test_concurrent_run_deploys_nothing_and_says_so(hydra: Hydra) -> None:
    hold = hydra.root / "hold"
    hold.touch()
    first = hydra.start(hydra.release(build=5), DEPLOY_HOLD=str(hold))
    try:
        waiting = Path(f"{hold}.waiting")
        for _ in range(1200):  # the first run is inside its first deploy (bounded wait)
            if waiting.exists() or first.poll() is not None:
                break
            time.sleep(0.05)
        assert waiting.exists(), "the first run never reached deploy"

        second = hydra.run(hydra.release(build=6))
        assert second.returncode == 75
        assert second.events() == ["deploy.busy"]
        assert "holds the lock" in second.messages()
        assert len(hydra.deploys()) == 1  # only the first run's first host
    finally:
        hold.unlink()
    first_run = hydra.finish(first)
    assert first_run.returncode == 0
    assert len(first_run.deploys) == len(fleet_order())
    assert hydra.live()["build"] == 5


def test_failed_host_stops_the_rollout_and_fails_the_hook(hydra: Hydra) -> None:
    order = fleet_order()
    failing = order[1]
    run = hydra.run(hydra.release(), DEPLOY_FAIL_NODE=failing)

    assert run.returncode == 1
    assert run.deploys == [expected_call(node) for node in order[:2]]
    failed = [line for line in run.lines if line["event"] == "deploy.step.failed"]
    assert failed[0]["node"] == failing and failed[0]["exit_status"] == 7
    assert not (hydra.state / "live.json").exists()  # not recorded as live


def test_stop_file_pauses_deploys(hydra: Hydra) -> None:
    hydra.state.mkdir()
    (hydra.state / "stop").touch()
    run = hydra.run(hydra.release())

    assert run.returncode == 3
    assert run.deploys == []
    assert "stop file" in run.messages()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"nixName": f"chatstack-release-{OLDER_REV}"},
            "does not name the plan's revision",
        ),
        ({"outputs": []}, "expected one output named 'out'"),
        ({"build": "100"}, "positive build id"),
    ],
    ids=["name-mismatch", "no-output", "bad-build-id"],
)
def test_release_that_does_not_carry_its_revision_is_refused(
    hydra: Hydra, change: dict[str, Any], message: str
) -> None:
    run = hydra.run(hydra.release(**change))

    assert run.returncode == 2
    assert run.deploys == []
    assert message in run.messages()


def test_dirty_tree_release_is_refused(hydra: Hydra) -> None:
    payload = hydra.release()
    out = Path(payload["outputs"][0]["path"])
    plan_dir = Path(
        (out / "nix-support" / "hydra-aggregate-constituents").read_text().split()[1]
    )
    plan = json.loads((plan_dir / "deploy-plan.json").read_text())
    (plan_dir / "deploy-plan.json").write_text(json.dumps({**plan, "revision": None}))

    run = hydra.run(payload)
    assert run.returncode == 2
    assert "dirty tree" in run.messages()
    assert run.deploys == []


def test_missing_hydra_json_and_bad_config_are_clear_errors(hydra: Hydra) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_JSON"}
    out = subprocess.run(
        [sys.executable, str(HOOK), "--config", str(hydra.config)],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "HYDRA_JSON is not set" in json.loads(out.stdout)["message"]

    hydra.config.write_text(
        json.dumps({"project": "chatstack", "flake": FLAKE + "#mq"})
    )
    run = hydra.run(hydra.release())
    assert run.returncode == 2
    assert "config" in run.messages()
    assert run.deploys == []
