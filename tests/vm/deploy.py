import json

facts = json.loads(deployer.succeed("cat /etc/chatstack-deploy-test/facts.json"))
url = f"http://app:{facts['port']}"
live_file = f"{facts['state_dir']}/live.json"
ssh = "ssh -i /etc/chatstack-deploy-test/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 root@app"


def serving() -> str:
    """The generation the app serves (its instance name), after a chat works through it."""
    deployer.succeed(f"chat-probe chat --url {url} >&2")
    health = json.loads(deployer.succeed(f"curl -sf {url}/healthz"))
    return str(health["instance"])


def system() -> str:
    return app.succeed("readlink -f /run/current-system").strip()


start_all()

with subtest("app boots release v1 and serves the chat"):
    app.wait_for_unit("chatstack-serve.service")
    app.wait_for_open_port(facts["port"])
    deployer.wait_until_succeeds(f"curl -sf {url}/healthz")
    assert serving() == "app-v1"
    deployer.wait_until_succeeds(f"{ssh} true", timeout=120)
    v1 = system()

with subtest("the deployer's checkout has a good and a broken release"):
    revisions = json.loads(deployer.succeed("chatstack-deploy-test prepare"))

with subtest("a green release is deployed: the new generation is live and serving"):
    out = deployer.succeed(f"chatstack-deploy-test release {revisions['good']} 101")
    events = [
        json.loads(line)["event"] for line in out.splitlines() if line.startswith("{")
    ]
    assert events[-1] == "deploy.done", events
    app.succeed("grep -qx v2 /etc/chatstack-release")
    v2 = system()
    assert v2 != v1
    app.wait_for_unit("chatstack-serve.service")
    deployer.wait_until_succeeds(f"curl -sf {url}/healthz | grep -q app-v2")
    assert serving() == "app-v2"
    live = json.loads(deployer.succeed(f"cat {live_file}"))
    assert live["build"] == 101 and live["revision"] == revisions["good"], live

with subtest(
    "a broken release is rolled back by magic rollback; the chat keeps working"
):
    deployer.succeed(
        "systemd-run --unit=deploy-broken --remain-after-exit --service-type=exec "
        "--setenv=HOME=/root /run/current-system/sw/bin/chatstack-deploy-test "
        f"release {revisions['broken']} 102"
    )
    # v3 is active: SSH is closed, deploy-rs cannot confirm, the chat still answers. The
    # checkout's confirmTimeout (120 s) leaves time to see it before the host rolls back.
    app.wait_until_succeeds("grep -qx v3 /etc/chatstack-release", timeout=600)
    deployer.wait_until_fails(f"{ssh} true")
    deployer.wait_until_succeeds(f"curl -sf {url}/healthz | grep -q app-v3")
    assert serving() == "app-v3"
    # The host rolls itself back after confirmTimeout; the hook reports the failure.
    deployer.wait_until_succeeds(
        "systemctl show -p SubState --value deploy-broken | grep -qx exited",
        timeout=600,
    )
    status = deployer.succeed(
        "systemctl show -p ExecMainStatus --value deploy-broken"
    ).strip()
    assert status == "1", f"the hook exited {status}"
    journal = deployer.succeed("journalctl -u deploy-broken -o cat")
    assert '"event": "deploy.step.failed"' in journal, journal
    app.wait_until_succeeds("grep -qx v2 /etc/chatstack-release")
    assert system() == v2
    deployer.wait_until_succeeds(f"{ssh} true")
    deployer.wait_until_succeeds(f"curl -sf {url}/healthz | grep -q app-v2")
    assert serving() == "app-v2"
    live = json.loads(deployer.succeed(f"cat {live_file}"))
    assert live["build"] == 101, "a rolled back release is not recorded as live"
