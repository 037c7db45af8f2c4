# vm-failover (tests/vm/failover.nix). Users chat through lb with `chat-probe traffic` (the
# flow tests/stack/test_stack_traffic.py runs around a killed gateway) while app1 loses power;
# the flow itself fails unless every acked message is in history once, under its acked id,
# and every user saw every other's. Names and ports: /etc/chatstack-vm-test.json (fleet.nix).
import json

start_all()


def facts(machine):
    return json.loads(machine.succeed("cat /etc/chatstack-vm-test.json"))


def events(path):
    """The complete JSON lines chat-probe has written so far."""
    text = client.succeed(f"cat {path}")
    return [
        json.loads(line)
        for line in text.splitlines(keepends=True)
        if line.endswith("\n")
    ]


def acks_after(path, talker, since):
    return sum(
        1
        for e in events(path)
        if e["event"] == "say"
        and e["talker"] == talker
        and e["answer"] == "ack"
        and e["sent_at"] > since
    )


def wait_for_acks(path, talkers, since, count):
    """Every talker of `talkers` got `count` acks for says sent after `since` (client clock)."""
    for talker in talkers:
        retry(lambda _last, t=talker: acks_after(path, t, since) >= count)


def client_clock():
    return float(client.succeed("date +%s.%N"))


origin = facts(client)["origin"]
# The client trusts the origin's test CA through the system bundle (security.pki).
curl = "curl -s --cacert /etc/ssl/certs/ca-certificates.crt"
probe = "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt chat-probe"
events_file = "/tmp/failover.jsonl"

with subtest("the fleet is up"):
    mq.wait_for_unit("chat-history.service")
    for app in (app1, app2):
        for unit in facts(app)["gateways"]:
            app.wait_for_unit(f"{unit}.service")
    lb.wait_for_unit("nginx.service")
    client.wait_until_succeeds(f"{curl} -f {origin}/readyz")

with subtest("users chat through lb, on the gateways of both app hosts"):
    client.succeed(
        "systemd-run --unit chat-traffic --remain-after-exit"
        " --setenv=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        f" $(command -v chat-probe) traffic --url {origin} --talkers 6"
        f" --until /tmp/failover.stop --events {events_file}"
    )
    client.wait_until_succeeds(
        f"test $(jq -s 'map(select(.answer == \"ack\")) | length' {events_file}) -ge 20"
    )
    first: dict[str, str] = {}
    for e in events(events_file):
        if e["event"] == "connected":
            first.setdefault(e["talker"], e["instance"])
    assert len(first) == 6, first
    on_app1 = sorted(t for t, instance in first.items() if instance.startswith("app1-"))
    on_app2 = sorted(t for t, instance in first.items() if instance.startswith("app2-"))
    assert on_app1 and on_app2, f"talkers were not on both app hosts: {first}"

with subtest("app1 loses power; its users move to app2 and keep chatting"):
    crashed_at = client_clock()
    app1.crash()
    wait_for_acks(events_file, on_app1 + on_app2, crashed_at, 5)
    client.succeed("touch /tmp/failover.stop")
    client.wait_until_succeeds(
        "test $(systemctl show -P ExecMainExitTimestampMonotonic chat-traffic) != 0"
    )
    output = client.succeed("journalctl -u chat-traffic -o cat")
    print(output)
    status = client.succeed("systemctl show -P ExecMainStatus chat-traffic").strip()
    assert status == "0" and "traffic: PASS" in output, (
        f"chat-probe traffic exited {status}"
    )

    logged = events(events_file)
    summary = logged[-1]
    assert summary["event"] == "summary", summary
    for talker in on_app1:
        instances = summary["talkers"][talker]["instances"]
        assert (
            all(i.startswith("app2-") for i in instances[1:]) and len(instances) >= 2
        ), instances
        felt = [
            e for e in logged
            if e["event"] == "say" and e["talker"] == talker and e["sent_at"] >= crashed_at - 1
            and e["answer"] in ("timeout", "closed")
        ]  # fmt: skip
        assert felt, f"{talker} on app1 never noticed the crash"
    for talker in on_app2:
        assert len(summary["talkers"][talker]["instances"]) == 1, summary["talkers"][
            talker
        ]
    # Every acked message is in history exactly once (the flow checked each one by id).
    says = [e for e in logged if e["event"] == "say" and e["answer"] == "ack"]
    assert summary["acked"] == summary["stored"] == len(says) >= 40, summary

with subtest("app1 boots again and rejoins the upstream"):
    app1.start()
    for unit in facts(app1)["gateways"]:
        app1.wait_for_unit(f"{unit}.service")
    client.wait_until_succeeds(
        f"{curl} -f {origin}/readyz | jq -e '.instance | startswith(\"app1-\")'",
        timeout=120,
    )
    output = client.succeed(
        f"{probe} traffic --url {origin} --talkers 6 --duration 5 --events /tmp/after.jsonl 2>&1"
    )
    assert output.splitlines()[-1] == "traffic: PASS", output
    summary = events("/tmp/after.jsonl")[-1]
    hosts = {t["instances"][0].split("-gw-")[0] for t in summary["talkers"].values()}
    assert hosts == {"app1", "app2"}, f"after app1's return, talkers were on {hosts}"
