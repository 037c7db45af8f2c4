# vm-security (tests/vm/security.nix). Every refusal is paired with the allowed case, so a
# check that cannot connect at all does not pass by accident.
# Names and ports: /etc/chatstack-vm-test.json (tests/vm/fleet.nix).
import json
import shlex

start_all()


def facts(machine):
    return json.loads(machine.succeed("cat /etc/chatstack-vm-test.json"))


mq_facts = facts(mq)
ports = mq_facts["ports"]
erlang = mq_facts["erlang"]
mq_address = mq_facts["addresses"]["mq"]
others = (app1, app2, client, lb)

with subtest("the fleet is up"):
    mq.wait_for_unit("rabbitmq.service")
    mq.wait_for_unit("chatstack-rabbitmq-setup.service")
    mq.wait_for_unit("chat-history.service")
    for app in (app1, app2):
        for unit in facts(app)["gateways"]:
            app.wait_for_unit(f"{unit}.service")
    lb.wait_for_unit("nginx.service")
    mq.wait_for_open_port(ports["amqps"], addr=mq_address)

with subtest(
    "AMQPS reachable from the app hosts only; no plaintext AMQP, epmd or distribution"
):
    for app in (app1, app2):
        app.succeed(f"nc -z -w 5 {mq_address} {ports['amqps']}")
    for machine in (client, lb):
        machine.fail(f"nc -z -w 5 {mq_address} {ports['amqps']}")
    closed = [
        ports["amqp"],
        erlang["epmd_port"],
        erlang["distribution_port"],
        ports["rabbitmq_management"],
    ]
    for machine in others:
        for port in closed:
            machine.fail(f"nc -z -w 5 {mq_address} {port}")
    # Not only firewalled: nothing listens on those ports on a non-loopback address.
    listening = mq.succeed("ss -Htln")
    for port in closed:
        exposed = [
            line for line in listening.splitlines()
            if line.split()[3].endswith(f":{port}") and not line.split()[3].startswith(("127.", "[::1]", "[::ffff:127."))
        ]  # fmt: skip
        assert not exposed, f"port {port} listens beyond loopback: {exposed}"

with subtest("guest is refused, the services' users are not"):
    # The broker's own password check (the passwords go through stdin, never argv).
    gateway_password = mq_facts["secrets"]["amqp-gateway-password"]
    user = mq_facts["amqp"]["users"]["gateway"]["name"]

    def authenticate(name, password_command):
        ctl = f"rabbitmqctl authenticate_user {shlex.quote(name)}"
        return f"{password_command} | su -s /bin/sh rabbitmq -c {shlex.quote(ctl)}"

    mq.succeed(authenticate(user, f"cat {gateway_password}"))
    mq.fail(authenticate("guest", "echo guest"))
    mq.fail(authenticate(user, "echo wrong-password"))

with subtest("a TLS client without the fleet CA is refused"):
    ca = facts(app1)["secrets"]["amqp-ca-cert"]
    connect = f"openssl s_client -connect {mq_address}:{ports['amqps']} -verify_return_error -brief < /dev/null"
    app1.succeed(f"{connect} -CAfile {ca}")
    app1.fail(f"{connect} -CAfile /etc/ssl/certs/ca-certificates.crt")

with subtest("no secret value in command lines, the journal or world-readable files"):
    by_name = {"app1": app1, "mq": mq, "lb": lb}
    secrets: dict[str, list[str]] = {}
    for host, machine in by_name.items():
        for name, path in facts(machine)["secrets"].items():
            if "password" in name or "cookie" in name:
                secrets.setdefault(host, []).append(path)
    assert sum(len(paths) for paths in secrets.values()) >= 4, secrets
    for host, paths in secrets.items():
        machine = by_name[host]
        # The values, one a line, in a root-only file that the searches below do not read.
        machine.succeed(
            f"(umask 077; for f in {' '.join(paths)}; do cat $f; echo; done > /root/needles)"
        )
        assert int(machine.succeed("awk 'length >= 16' /root/needles | wc -l")) == len(
            paths
        )
        # /proc/*/cmdline of every process, arguments joined by spaces.
        processes = int(machine.succeed("ls -d /proc/[0-9]* | wc -l"))
        assert processes > 50, processes
        machine.succeed(
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done > /root/cmdlines || true"
        )
        hits = machine.succeed(
            "grep -cF -f /root/needles /root/cmdlines || true"
        ).strip()
        assert hits == "0", f"a secret in {hits} command lines on {host}"
        entries = int(
            machine.succeed(
                "journalctl -o export > /root/journal; grep -c '^MESSAGE=' /root/journal"
            )
        )
        assert entries > 100, f"only {entries} journal entries on {host}"
        hits = machine.succeed(
            "grep -caF -f /root/needles /root/journal || true"
        ).strip()
        assert hits == "0", f"a secret in {hits} journal lines on {host}"
        # World-readable files, following /etc into the store (unit files, rabbitmq.conf,
        # nginx.conf, Netdata's config), plus every store file the units name (service TOML).
        machine.succeed(
            "find -L /etc /var /run /tmp /home \\( -path /run/current-system -o -path /run/booted-system"
            " -o -path /run/agenix -o -path /run/agenix.d \\) -prune"
            " -o -type f -perm -o+r -size -4M -print > /root/files 2>/dev/null || true"
        )
        machine.succeed(
            "systemctl cat '*.service' | grep -o '/nix/store/[^ \"'\\'';]*' | sort -u"
            ' | while read -r p; do if [ -f "$p" ]; then echo "$p"; fi; done >> /root/files'
        )
        files = int(
            machine.succeed("sort -u -o /root/files /root/files; wc -l < /root/files")
        )
        assert files > 500, f"only {files} files searched on {host}"
        found = machine.succeed(
            "xargs -d '\\n' grep -lIF -f /root/needles < /root/files 2>/dev/null || true"
        )
        assert not found.strip(), f"a secret readable by everyone on {host}: {found}"

with subtest("services run as dynamic users with their sandbox"):
    units = [(app, unit) for app in (app1, app2) for unit in facts(app)["gateways"]] + [
        (mq, "chat-history")
    ]
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
    }
    for machine, unit in units:
        keys = [*expected, "RestrictAddressFamilies"]
        shown = machine.succeed(f"systemctl show {unit}.service -p {' -p '.join(keys)}")
        values = dict(line.split("=", 1) for line in shown.splitlines())
        families = set(values.pop("RestrictAddressFamilies").split())
        assert values == expected, f"{machine.name} {unit}: {values}"
        assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}, f"{unit}: {families}"
        main = machine.succeed(f"systemctl show -P MainPID {unit}.service").strip()
        owner = machine.succeed(f"stat -c %U /proc/{main}").strip()
        assert owner not in ("root", "nobody"), f"{unit} runs as {owner}"
        assert machine.succeed(f"id -u {owner}").strip() != "0"
