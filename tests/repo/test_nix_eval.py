"""Pure Nix evaluations of the fixes a review of the Nix half asked for, with nixpkgs' real lib.

- `modules/lib.nix` `ipAddress` / `ipPort`: real IPv4/IPv6 checks over good and bad examples.
- `nix/hosts/common.nix`: the lockout assertion (a host nobody can log in to does not
  evaluate) and `nix.settings.trusted-users` keeping root.
- `nix/lib.nix` `activationTimeout`: deploy-rs' timeout derived from the units' start timeouts.
- `modules/monitoring.nix` `notifications`: the health_alarm_notify.conf it renders, sourced by
  bash the way Netdata's alarm-notify.sh does, posting to a real HTTP server with real curl/jq.

They need a nixpkgs `lib/` ($NIXEVAL_SUBSET/lib, as test_nix_parse.py) and skip without it;
nix-instantiate missing fails under CI=true (test_nix_parse.py's fixture).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_nix_parse import NIXPKGS_LIB, REPO, nix_eval, nix_instantiate

__all__ = ["nix_instantiate"]  # the fixture, used by name

needs_lib = pytest.mark.skipif(
    not (NIXPKGS_LIB / "default.nix").is_file(),
    reason=f"no nixpkgs lib at {NIXPKGS_LIB} (set NIXEVAL_SUBSET; see ../shared/nixeval)",
)
pytestmark = needs_lib

FLEET = tomllib.loads((REPO / "nix" / "fleet.toml").read_text(encoding="utf-8"))


def lib_eval(nix: str, body: str) -> Any:
    """Evaluate ``body`` with ``lib`` (nixpkgs) and ``chatLib`` (modules/lib.nix) in scope."""
    expr = (
        f"let lib = import {NIXPKGS_LIB}; "
        f"chatLib = import {REPO}/modules/lib.nix {{ inherit lib; }}; in {body}"
    )
    return nix_eval(nix, expr)


def nix_string(value: str) -> str:
    return json.dumps(value).replace("${", "\\${")


# --------------------------------------------------------------------------- addresses

GOOD_IPS = [
    "10.0.0.20",
    "0.0.0.0",
    "255.255.255.255",
    "127.0.0.2",
    "::1",
    "::",
    "fe80::1",
    "2001:db8::ffff",
    "2001:DB8:0:0:0:0:0:1",
    "1:2:3:4:5:6:7:8",
]
BAD_IPS = [
    "999.1.1.1",
    "256.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "10.0.0.1 ",
    "10.0.0.1/24",
    "chat.example.com",
    "",
    "1:2:3:4:5:6:7:8:9",
    "2001:db8::g",
    "1::2::3",
    "12345::1",
    "2001:db8::1/64",
    "fe80::1%eth0",
    ":",
]


def test_ip_address_type(nix_instantiate: str) -> None:
    values = GOOD_IPS + BAD_IPS
    checked = lib_eval(
        nix_instantiate,
        f"map chatLib.ipAddress.check [ {' '.join(nix_string(v) for v in values)} ]",
    )
    assert dict(zip(values, checked, strict=True)) == {
        **{v: True for v in GOOD_IPS},
        **{v: False for v in BAD_IPS},
    }


def test_ip_address_option_error_names_the_value(nix_instantiate: str) -> None:
    done = subprocess.run(
        [
            nix_instantiate,
            "--eval",
            "--strict",
            "-E",
            (
                f"let lib = import {NIXPKGS_LIB}; "
                f"chatLib = import {REPO}/modules/lib.nix {{ inherit lib; }}; in "
                "(lib.evalModules { modules = [ { options.a = lib.mkOption "
                '{ type = chatLib.ipAddress; }; config.a = "999.1.1.1"; } ]; }).config.a'
            ),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "999.1.1.1" in done.stderr and "IPv4 or IPv6 address" in done.stderr


GOOD_PORTS = ["10.0.0.11:8001", "[::1]:80", "[fe80::1]:65535", "127.0.0.1:1"]
BAD_PORTS = [
    "999.0.0.1:80",
    "10.0.0.1:70000",
    "10.0.0.1:0",
    "10.0.0.1",
    "::1:80",
    "[::1]",
    "[2001:db8::g]:80",
    "localhost:8001",
]


def test_ip_port_type(nix_instantiate: str) -> None:
    values = GOOD_PORTS + BAD_PORTS
    checked = lib_eval(
        nix_instantiate,
        f"map chatLib.ipPort.check [ {' '.join(nix_string(v) for v in values)} ]",
    )
    assert dict(zip(values, checked, strict=True)) == {
        **{v: True for v in GOOD_PORTS},
        **{v: False for v in BAD_PORTS},
    }


# --------------------------------------------------------------------------- common.nix


def common_host(nix: str, fleet: dict[str, Any]) -> Any:
    """nix/hosts/common.nix for host lb of ``fleet``: its assertions, trusted users and keys."""
    fleet_json = json.dumps(json.dumps(fleet))
    expr = (
        f"let lib = import {NIXPKGS_LIB}; fleet = builtins.fromJSON {fleet_json}; "
        f"host = lib.fix (config: import {REPO}/nix/hosts/common.nix {{ "
        'inherit config lib; chatstackHost = { name = "lb"; host = fleet.hosts.lb; inherit fleet; '
        f'publicKeyFile = secret: {REPO}/nix/secrets + "/${{secret}}.pub"; }}; }}); in '
        "{ assertions = host.assertions; "
        "trusted = host.nix.settings.trusted-users; "
        "keys = host.users.users.${fleet.ssh_user}.openssh.authorizedKeys.keys; }"
    )
    return nix_eval(nix, expr)


def test_example_fleet_can_log_in(nix_instantiate: str) -> None:
    host = common_host(nix_instantiate, FLEET)
    assert host["keys"], "the example fleet must pass its own lockout assertion"
    assert all(a["assertion"] for a in host["assertions"])


def without_ssh_keys(fleet: dict[str, Any]) -> dict[str, Any]:
    """``fleet`` with neither its ssh_authorized_keys nor the pipeline's deploy keys."""
    secrets = {n: s for n, s in fleet["secrets"].items() if s["kind"] != "ssh-ed25519"}
    return {k: v for k, v in fleet.items() if k != "ssh_authorized_keys"} | {
        "secrets": secrets
    }


def test_a_fleet_of_age_keys_only_is_refused(nix_instantiate: str) -> None:
    fleet = without_ssh_keys(FLEET)
    assert all(key.startswith("age1") for key in fleet["admins"].values())
    host = common_host(nix_instantiate, fleet)
    assert host["keys"] == []
    failed = [a["message"] for a in host["assertions"] if not a["assertion"]]
    assert len(failed) == 1
    assert "nix/fleet.toml" in failed[0] and "ssh_authorized_keys" in failed[0]
    assert "[admins]" in failed[0]


def test_an_ssh_admin_key_can_log_in(nix_instantiate: str) -> None:
    fleet = without_ssh_keys(FLEET)
    key = FLEET["hosts"]["lb"]["host_key"]  # any ed25519 public key will do
    fleet["admins"] = {**fleet["admins"], "someone": key}
    host = common_host(nix_instantiate, fleet)
    assert host["keys"] == [key]
    assert all(a["assertion"] for a in host["assertions"])


def test_trusted_users_keep_root(nix_instantiate: str) -> None:
    trusted = common_host(nix_instantiate, FLEET)["trusted"]
    assert "root" in trusted and FLEET["ssh_user"] in trusted


# --------------------------------------------------------------------------- activationTimeout


def activation_timeout(nix: str, services: str) -> subprocess.CompletedProcess[str]:
    expr = (
        f"let lib = import {NIXPKGS_LIB}; "
        f"nixLib = import {REPO}/nix/lib.nix {{ self = {{ }}; nixpkgs = {{ inherit lib; }}; }}; "
        f"in nixLib.activationTimeout {{ systemd.services = {services}; }}"
    )
    return subprocess.run(
        [nix, "--eval", "--strict", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )


def test_activation_timeout_adds_up_the_chatstack_units(nix_instantiate: str) -> None:
    done = activation_timeout(
        nix_instantiate,
        "{ rabbitmq.serviceConfig.TimeoutStartSec = 3600;"
        '  chatstack-rabbitmq-setup.serviceConfig = { Type = "oneshot"; TimeoutStartSec = 420; };'
        '  chat-history.serviceConfig.Type = "notify";'  # systemd's default: 90 s
        '  nginx.serviceConfig.TimeoutStartSec = "2min";'
        "  sshd.serviceConfig.TimeoutStartSec = 9999; }",  # not a chatstack unit
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 60 + 3600 + 420 + 90 + 120


def test_activation_timeout_is_never_below_deploy_rs_default(
    nix_instantiate: str,
) -> None:
    done = activation_timeout(nix_instantiate, "{ nginx.serviceConfig = { }; }")
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 240


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ('{ Type = "oneshot"; }', "oneshot unit without TimeoutStartSec"),
        ('{ TimeoutStartSec = "infinity"; }', "is not a number of seconds or minutes"),
    ],
)
def test_activation_timeout_refuses_an_unbounded_unit(
    nix_instantiate: str, unit: str, expected: str
) -> None:
    done = activation_timeout(
        nix_instantiate, f"{{ chat-thing.serviceConfig = {unit}; }}"
    )
    assert done.returncode != 0
    assert "systemd.services.chat-thing" in done.stderr and expected in done.stderr


# --------------------------------------------------------------------------- notifications

# modules/monitoring.nix evaluated alone: the options it reads from other modules are loose.
MONITORING = r"""
{ libPath, repo, notifications }:
let
  lib = import libPath;
  loose = default: lib.mkOption { type = lib.types.anything; inherit default; };
  fake = name: { type = "derivation"; inherit name; outPath = "/usr"; meta.mainProgram = name; };
  pkgs = {
    writeText = builtins.toFile;
    formats.yaml = _: { generate = name: value: builtins.toFile name (builtins.toJSON value); };
    jq = fake "jq";
    gnugrep = fake "grep";
    coreutils = fake "coreutils";
  };
  eval = lib.evalModules {
    specialArgs = { inherit pkgs; };
    modules = [
      (repo + "/modules/monitoring.nix")
      {
        options = {
          assertions = loose [ ];
          systemd = loose { };
          services.netdata = loose { };
          services.rabbitmq = loose { enable = false; managementPlugin.enable = false; };
          services.nginx = loose { enable = false; statusPage = false; };
        };
        config.services.chatstack.monitoring = { enable = true; inherit notifications; };
      }
    ];
  };
in
eval.config.services.netdata.configDir
"""


def monitoring_config_dir(
    nix: str, tmp_path: Path, notifications: str
) -> dict[str, str]:
    (tmp_path / "monitoring.nix").write_text(MONITORING)
    config_dir: dict[str, str] = nix_eval(
        nix,
        f"import {tmp_path}/monitoring.nix {{ libPath = {NIXPKGS_LIB}; repo = {REPO}; "
        f"notifications = {notifications}; }}",
    )
    return config_dir


def test_no_notification_file_by_default(nix_instantiate: str, tmp_path: Path) -> None:
    config_dir = monitoring_config_dir(nix_instantiate, tmp_path, "{ }")
    assert "health_alarm_notify.conf" not in config_dir
    assert "health.d/chatstack.conf" in config_dir  # the module did render


class Receiver(http.server.BaseHTTPRequestHandler):
    status = 200
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, json.loads(body)))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[http.server.HTTPServer]:
    Receiver.received = []
    Receiver.status = 200
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# What alarm-notify.sh (netdata src/health/notifications/alarm-notify.sh.in) provides before
# it sources the user's health_alarm_notify.conf and calls custom_sender "${to_custom}":
# docurl as there (curl with curl_options, prints the HTTP code), info/error, the event
# variables. docurl also records its arguments, to show the URL is not among them.
ALARM_NOTIFY = r"""
set -u
curl=curl
curl_options="--connect-timeout 5"
info() { echo "INFO: $*" >&2; }
error() { echo "ERROR: $*" >&2; }
docurl() {
  printf '%s\n' "$@" >> "$ARGV_LOG"
  ${curl} ${curl_options} --write-out "%{http_code}" --output /dev/null --silent --show-error "${@}"
}
source "$CONF"
host=mq name=chatstack_publish_errors chart=chatstack.gateway_publish_errors
status=CRITICAL old_status=WARNING value_string="12 errors" when=1780000000
info='messages the broker refused, "nacked" or lost'
goto_url="http://mq:19999/#chart"
custom_sender "${DEFAULT_RECIPIENT_CUSTOM}"
"""


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None,
    reason="curl and jq are needed to run the webhook sender",
)
@pytest.mark.parametrize("status", [200, 500])
def test_webhook_posts_each_alarm_without_the_url_on_a_command_line(
    nix_instantiate: str,
    tmp_path: Path,
    receiver: http.server.HTTPServer,
    status: int,
) -> None:
    hook_key = "key-only-in-the-url-file"
    url_file = tmp_path / "webhook-url"
    url_file.write_text(f"http://127.0.0.1:{receiver.server_port}/hook/{hook_key}\n")
    config_dir = monitoring_config_dir(
        nix_instantiate,
        tmp_path,
        f'{{ webhookUrlFile = "{url_file}"; email = [ "ops@example.com|critical" ]; }}',
    )
    conf = Path(config_dir["health_alarm_notify.conf"])
    text = conf.read_text()
    assert hook_key not in text and str(url_file) in text
    assert 'SEND_CUSTOM="YES"' in text and 'DEFAULT_RECIPIENT_CUSTOM="webhook"' in text
    assert 'SEND_EMAIL="YES"' in text
    assert "DEFAULT_RECIPIENT_EMAIL='ops@example.com|critical'" in text

    Receiver.status = status
    argv_log = tmp_path / "argv"
    done = subprocess.run(
        ["bash", "-c", ALARM_NOTIFY],
        env={**os.environ, "CONF": str(conf), "ARGV_LOG": str(argv_log)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode == 0) == (status == 200), done.stderr
    assert ("INFO: sent chatstack webhook" in done.stderr) == (status == 200), (
        done.stderr
    )
    assert Receiver.received == [
        (
            f"/hook/{hook_key}",
            {
                "host": "mq",
                "alarm": "chatstack_publish_errors",
                "chart": "chatstack.gateway_publish_errors",
                "status": "CRITICAL",
                "old_status": "WARNING",
                "value": "12 errors",
                "info": 'messages the broker refused, "nacked" or lost',
                "when": "1780000000",
                "url": "http://mq:19999/#chart",
            },
        )
    ]
    assert hook_key not in argv_log.read_text()


def test_the_pipeline_deploy_key_is_authorized_where_it_deploys(
    nix_instantiate: str,
) -> None:
    keys = common_host(nix_instantiate, FLEET)["keys"]
    pipeline = (REPO / "nix/secrets/hydra-deploy-key.pub").read_text().strip()
    assert pipeline in keys and set(FLEET["ssh_authorized_keys"]) <= set(keys)
