# vm-observability (tests/vm/observability.nix). Traffic first (chat-probe traffic, so the
# counters have something to count), then logs, Netdata, collectors and alarms on each host.
# Names and ports: /etc/chatstack-vm-test.json (tests/vm/fleet.nix); alarm names are the
# templates of modules/monitoring.nix.
import json

start_all()

NETDATA = "http://127.0.0.1:19999/api/v1"


def facts(machine):
    return json.loads(machine.succeed("cat /etc/chatstack-vm-test.json"))


def netdata(machine, query):
    return json.loads(machine.succeed(f"curl -sf '{NETDATA}/{query}'"))


origin = facts(client)["origin"]
# The client trusts the origin's test CA through the system bundle (security.pki).
curl = "curl -s --cacert /etc/ssl/certs/ca-certificates.crt"
prefix = facts(client)["statsd"]["prefix"]
services = [(app, unit) for app in (app1, app2) for unit in facts(app)["gateways"]]
services.append((mq, "chat-history"))

with subtest("the fleet is up"):
    for machine, unit in services:
        machine.wait_for_unit(f"{unit}.service")
    lb.wait_for_unit("nginx.service")
    for machine in (lb, app1, app2, mq):
        machine.wait_for_unit("netdata.service")
    client.wait_until_succeeds(f"{curl} -f {origin}/readyz")

with subtest("traffic through lb"):
    output = client.succeed(
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt chat-probe traffic"
        f" --url {origin} --talkers 4 --duration 10 --events /tmp/traffic.jsonl 2>&1"
    )
    assert output.splitlines()[-1] == "traffic: PASS", output
    summary = json.loads(client.succeed("tail -n 1 /tmp/traffic.jsonl"))
    assert summary["acked"] >= 20, summary

with subtest("the services' journal lines are JSON with instance, level and event"):
    for machine, unit in services:
        lines = machine.succeed(f"journalctl _SYSTEMD_UNIT={unit}.service -o cat")
        records = [
            json.loads(line) for line in lines.splitlines()
        ]  # a non-JSON line fails here
        assert len(records) >= 2, f"{unit}: only {len(records)} lines"
        for record in records:
            assert {"instance", "level", "event", "time", "message"} <= record.keys(), (
                record
            )
        # jq reads them too, as docs/modules/README say operators do.
        count = machine.succeed(
            f"journalctl _SYSTEMD_UNIT={unit}.service -o cat"
            " | jq -c 'select(.instance and .level and .event)' | wc -l"
        )
        assert int(count) == len(records), (unit, count, len(records))

with subtest("Netdata answers /api/v1/info on every host"):
    for machine in (lb, app1, app2, mq):
        machine.wait_until_succeeds(f"curl -sf {NETDATA}/info | jq -e .version")
        info = netdata(machine, "info")
        assert info["version"], info

with subtest("the chatstack statsd charts counted the traffic"):

    def counted(machine, chart):
        """Sum over the last 5 minutes of the chart's dimensions (events/s per second)."""
        data = netdata(
            machine,
            f"data?chart={prefix}.{chart}&after=-300&points=1&group=sum&format=json",
        )
        return sum(sum(value or 0 for value in row[1:]) for row in data["data"])

    for app in (app1, app2):
        for chart in (
            "gateway_messages_received",
            "gateway_messages_published",
            "gateway_messages_delivered",
        ):
            app.wait_until_succeeds(
                f"curl -sf '{NETDATA}/data?chart={prefix}.{chart}&after=-300&points=1&group=sum'"
            )
            retry(lambda _last, m=app, c=chart: counted(m, c) > 0)
    mq.wait_until_succeeds(
        f"curl -sf '{NETDATA}/data?chart={prefix}.history_messages_stored&after=-300&points=1'"
    )
    retry(lambda _last: counted(mq, "history_messages_stored") > 0)

with subtest("the nginx and RabbitMQ collectors are present"):

    def contexts(machine):
        return {
            chart["context"] for chart in netdata(machine, "charts")["charts"].values()
        }

    retry(lambda _last: any(c.startswith("nginx.") for c in contexts(lb)))
    retry(lambda _last: any(c.startswith("rabbitmq.") for c in contexts(mq)))
    retry(lambda _last: any(c.startswith("httpcheck.") for c in contexts(app1)))

with subtest("the alarms are loaded"):

    def alarms(machine):
        return {
            alarm["name"] for alarm in netdata(machine, "alarms?all")["alarms"].values()
        }

    always = {
        app1: {"chatstack_service_not_ready"},
        app2: {"chatstack_service_not_ready"},
        mq: {
            "chatstack_service_not_ready",
            "chatstack_rabbitmq_memory_alarm",
            "chatstack_rabbitmq_disk_alarm",
            "chatstack_history_backlog",
        },
    }
    for machine, names in always.items():
        retry(lambda _last, m=machine, n=names: n <= alarms(m))
    # The publish-errors alarm attaches to its statsd chart, which exists once the counter
    # was sent at least once.
    for app in (app1, app2):
        if f"{prefix}.gateway_publish_errors" in netdata(app, "charts")["charts"]:
            retry(lambda _last, m=app: "chatstack_publish_errors" in alarms(m))
