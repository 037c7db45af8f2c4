# vm-broker-restart (tests/vm/broker-restart.nix). Users chat through lb with
# `chat-probe traffic` (the flow tests/stack/test_stack_traffic.py runs around a broker
# restart); the flow fails unless every acked message ends up in history once, under its
# acked id, and every user saw every other's. The restart is done as stop, then start, so the
# test knows on the client's clock when the broker was certainly away.
# Names and ports: /etc/chatstack-vm-test.json (tests/vm/fleet.nix).
import json

start_all()


def facts(machine):
    return json.loads(machine.succeed("cat /etc/chatstack-vm-test.json"))


def events(path):
    text = client.succeed(f"cat {path}")
    return [
        json.loads(line)
        for line in text.splitlines(keepends=True)
        if line.endswith("\n")
    ]


def says(path):
    return [e for e in events(path) if e["event"] == "say"]


def client_clock():
    return float(client.succeed("date +%s.%N"))


origin = facts(client)["origin"]
# The client trusts the origin's test CA through the system bundle (security.pki).
curl = "curl -s --cacert /etc/ssl/certs/ca-certificates.crt"
events_file = "/tmp/broker-restart.jsonl"

# Every service's /readyz, asked from lb (the only host their firewall lets in).
readiness = []
for host in (app1, app2, mq):
    own = facts(host)
    address = own["addresses"][host.name]
    for unit, port in {**own["gateways"], **own["history"]}.items():
        readiness.append((host, unit, f"http://{address}:{port}/readyz"))
assert len(readiness) >= 3, readiness


def wait_ready_status(url, code):
    lb.wait_until_succeeds(
        f"test $(curl -s -o /dev/null -w '%{{http_code}}' {url}) = {code}"
    )


def broker_connections(host, unit):
    """How often the service logged that it connected to RabbitMQ (its JSON journal lines)."""
    query = (
        f"journalctl _SYSTEMD_UNIT={unit}.service -o cat"
        " | jq -cR 'fromjson? | select(.event == \"broker.connected\")' | wc -l"
    )
    return int(host.succeed(query))


with subtest("the fleet is up and every service is ready"):
    mq.wait_for_unit("rabbitmq.service")
    for host, unit, url in readiness:
        host.wait_for_unit(f"{unit}.service")
        wait_ready_status(url, 200)
    lb.wait_for_unit("nginx.service")
    client.wait_until_succeeds(f"{curl} -f {origin}/readyz")
    connected_before = {
        (h.name, unit): broker_connections(h, unit) for h, unit, _ in readiness
    }

with subtest("users chat through lb"):
    client.succeed(
        "systemd-run --unit chat-traffic --remain-after-exit"
        " --setenv=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        f" $(command -v chat-probe) traffic --url {origin} --talkers 4"
        f" --until /tmp/broker-restart.stop --events {events_file}"
    )
    client.wait_until_succeeds(
        f"test $(jq -s 'map(select(.answer == \"ack\")) | length' {events_file}) -ge 20"
    )

with subtest("RabbitMQ stops: every /readyz says 503, says get `unavailable`"):
    stopping_at = client_clock()
    mq.succeed("systemctl stop rabbitmq.service")
    down_at = client_clock()
    for _host, _unit, url in readiness:
        wait_ready_status(url, 503)
    retry(
        lambda _last: (
            sum(
                1
                for e in says(events_file)
                if e["sent_at"] > down_at and e["answer"] == "unavailable"
            )
            >= 5
        )
    )

with subtest("RabbitMQ starts again: every /readyz says 200, chat goes on"):
    starting_at = client_clock()
    mq.succeed("systemctl start rabbitmq.service")
    mq.wait_for_unit("rabbitmq.service")
    for _host, _unit, url in readiness:
        wait_ready_status(url, 200)
    ready_at = client_clock()
    retry(
        lambda _last: (
            sum(
                1
                for e in says(events_file)
                if e["sent_at"] > ready_at and e["answer"] == "ack"
            )
            >= 20
        )
    )
    client.succeed("touch /tmp/broker-restart.stop")
    client.wait_until_succeeds(
        "test $(systemctl show -P ExecMainExitTimestampMonotonic chat-traffic) != 0"
    )
    output = client.succeed("journalctl -u chat-traffic -o cat")
    print(output)
    status = client.succeed("systemctl show -P ExecMainStatus chat-traffic").strip()
    assert status == "0" and "traffic: PASS" in output, (
        f"chat-probe traffic exited {status}"
    )

with subtest(
    "no false ack during the outage, nothing acked lost, every service reconnected"
):
    attempts = says(events_file)
    while_down = [e for e in attempts if down_at <= e["sent_at"] <= starting_at]
    assert len(while_down) >= 5, (
        f"only {len(while_down)} says while the broker was down"
    )
    answers = {e["answer"] for e in while_down}
    assert answers == {"unavailable"}, f"answers while RabbitMQ was down: {answers}"
    before = [
        e for e in attempts if e["answer"] == "ack" and e["answered_at"] < stopping_at
    ]
    assert len(before) >= 20, len(before)
    summary = events(events_file)[-1]
    assert summary["event"] == "summary", summary
    acks = [e for e in attempts if e["answer"] == "ack"]
    # The flow checked each acked message in history by id: once, and history caught up.
    assert summary["acked"] == summary["stored"] == len(acks) >= 40, summary
    for host, unit, _url in readiness:
        after = broker_connections(host, unit)
        assert after > connected_before[(host.name, unit)], (
            f"{host.name} {unit}: no new broker.connected"
        )
