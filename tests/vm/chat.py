# vm-chat (tests/vm/chat.nix). Names and ports come from /etc/chatstack-vm-test.json, which
# tests/vm/fleet.nix writes on every node from the contract and the node's configuration.
# The load balancer keeps its production vhost (HTTPS only) with a test certificate instead of
# ACME, so the probe runs against https://lb; plain http://lb only redirects (checked below).
import json
import shlex

start_all()


def facts(machine):
    return json.loads(machine.succeed("cat /etc/chatstack-vm-test.json"))


origin = facts(client)["origin"]
# The client trusts the origin's test CA through the system bundle (security.pki).
curl = "curl -s --cacert /etc/ssl/certs/ca-certificates.crt"
# chat-probe's Python trusts the system CA bundle (the test web CA is in it on client).
probe = "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt chat-probe"

with subtest("rabbitmq, history, both app hosts' gateways, nginx and netdata are up"):
    mq.wait_for_unit("rabbitmq.service")
    mq.wait_for_unit("chat-history.service")
    for app in (app1, app2):
        gateways = facts(app)["gateways"]
        assert len(gateways) >= 1, gateways
        for unit, port in gateways.items():
            app.wait_for_unit(f"{unit}.service")
            app.wait_for_open_port(port, addr=facts(app)["addresses"][app.name])
    lb.wait_for_unit("nginx.service")
    lb.wait_for_open_port(443)
    for machine in (lb, app1, app2, mq):
        machine.wait_for_unit("netdata.service")
    client.wait_until_succeeds(f"{curl} -f {origin}/readyz")

with subtest(
    "the RabbitMQ provisioning unit succeeded: the users exist, guest does not"
):
    mq.wait_for_unit("chatstack-rabbitmq-setup.service")
    result = mq.succeed(
        "systemctl show -P Result chatstack-rabbitmq-setup.service"
    ).strip()
    assert result == "success", result
    amqp = facts(mq)["amqp"]
    ctl = "su -s /bin/sh rabbitmq -c " + shlex.quote("rabbitmqctl --silent list_users")
    users = {line.split("\t")[0] for line in mq.succeed(ctl).splitlines() if line}
    wanted = {user["name"] for user in amqp["users"].values()}
    assert wanted <= users, f"missing RabbitMQ users {wanted - users}; have {users}"
    assert "guest" not in users, users
    ctl = "rabbitmqctl --silent list_permissions -p " + shlex.quote(amqp["vhost"])
    allowed = {
        line.split("\t")[0]
        for line in mq.succeed(
            "su -s /bin/sh rabbitmq -c " + shlex.quote(ctl)
        ).splitlines()
        if line
    }
    assert wanted <= allowed, (
        f"no permissions on vhost {amqp['vhost']} for {wanted - allowed}"
    )

with subtest("the origin is HTTPS only: plain HTTP on the same name redirects to it"):
    plain = "http://" + origin.split("://", 1)[1] + "/"
    answer = client.succeed(
        f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' {plain}"
    )
    assert answer == f"301 {origin}/", answer

with subtest("chat-probe all passes from the client through the load balancer"):
    output = client.succeed(f"{probe} all --url {origin} 2>&1")
    print(output)
    flows = ["chat", "cross-instance", "members", "recovery", "origin", "cors", "abuse"]
    for flow in flows:
        assert f"{flow}: PASS" in output, f"{flow} did not pass"
        steps = [
            line for line in output.splitlines() if line.startswith(f"{flow}: ok ")
        ]
        assert len(steps) >= 3, f"{flow}: only {len(steps)} checks ran"
    assert output.splitlines()[-1] == f"all: PASS ({len(flows)} flows)", output

with subtest("members on app1 and on app2 hear each other (chat-probe traffic)"):
    output = client.succeed(
        f"{probe} traffic --url {origin} --talkers 6 --duration 10"
        " --events /tmp/chat-traffic.jsonl 2>&1"
    )
    print(output)
    assert output.splitlines()[-1] == "traffic: PASS", output
    events = [
        json.loads(line)
        for line in client.succeed("cat /tmp/chat-traffic.jsonl").splitlines()
    ]
    summary = events[-1]
    assert summary["event"] == "summary", summary
    hosts = {
        instance.split("-gw-")[0]
        for talker in summary["talkers"].values()
        for instance in talker["instances"]
    }
    assert {"app1", "app2"} <= hosts, f"talkers were only on {hosts}"
    # The flow checked that every talker saw every other's acked messages; count them.
    assert summary["acked"] == summary["stored"] >= 30, summary

with subtest("the history API answers through the load balancer"):
    messages = facts(client)["routes"]["messages"]
    url = origin + messages.replace("{room}", "vm-chat-empty")
    page = json.loads(client.succeed(f"{curl} -f {shlex.quote(url)}"))
    assert page["messages"] == [], page
    bad = origin + messages.replace("{room}", "bad%20room")
    status = client.succeed(
        f"{curl} -o /dev/null -w '%{{http_code}}' {shlex.quote(bad)}"
    )
    assert status == "400", status
