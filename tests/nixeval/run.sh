#!/usr/bin/env bash
# Developer check (not CI): evaluate every chatstack NixOS module on a small dummy host, every
# example host of nix/fleet.toml and every node of the NixOS VM tests (tests/vm/fleet.nix) with
# the offline nixeval harness, which uses the real nginx/RabbitMQ/Netdata/journald/Hydra/
# PostgreSQL/agenix modules from a third-party nixpkgs subset; then run
# the rendered nginx.conf through `nginx -t` and gixy (nixeval does) and load every rendered
# service config with the services' own config loader (when the project venv exists).
#
#   tests/nixeval/run.sh              # all dummy hosts, all fleet hosts, all VM test nodes
#   NIXEVAL=/path/to/nixeval NIXEVAL_SUBSET=/path/to/subset tests/nixeval/run.sh
#
# Exit status: 0 clean; 1 a finding (ERROR/ASSERT, nginx -t, gixy, config loader, parse);
# 2 the harness or its third-party subset is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
nixeval=${NIXEVAL:-$root/../shared/nixeval}
subset=${NIXEVAL_SUBSET:-${XDG_CACHE_HOME:-$HOME/.cache}/nixpkgs-subset}
# One output folder per checkout: two worktrees checked at once must not read each other's.
out=${NIXEVAL_OUT:-${TMPDIR:-/tmp}/chatstack-nixeval-$(printf %s "$root" | cksum | cut -d' ' -f1)}

die() {
  echo "tests/nixeval/run.sh: $*" >&2
  exit 2
}

[ -x "$nixeval/render.sh" ] || die "the nixeval harness is not at $nixeval (set NIXEVAL=...)"
command -v nix-instantiate > /dev/null || die "nix-instantiate is missing (Debian: apt-get install nix-bin)"
missing=()
while read -r path _; do
  [ -z "$path" ] || [ "${path#\#}" != "$path" ] || [ -e "$subset/$path" ] || missing+=("$path")
done < "$nixeval/FILES.txt"
if [ "${#missing[@]}" -ne 0 ]; then
  die "the third-party nixpkgs subset is missing or incomplete at $subset (set NIXEVAL_SUBSET=...);
see $nixeval/FILES.txt for how to obtain it. Missing:
$(printf '  %s\n' "${missing[@]}")"
fi
# gixy from its own venv when there is one (nixeval reports SKIP without gixy).
[ -d "$HOME/.cache/gixy-venv/bin" ] && PATH="$HOME/.cache/gixy-venv/bin:$PATH"

status=0
summary=()

echo "== nix-instantiate --parse"
for file in "$root"/modules/*.nix "$root"/nix/contract.nix "$root"/nix/capacity.nix "$root"/nix/hosts/*.nix "$root"/tests/nixeval/*.nix "$root"/tests/vm/*.nix; do
  if ! nix-instantiate --parse "$file" > /dev/null; then
    echo "PARSE ERROR: $file"
    status=1
  fi
done

# name | module file | extra render.sh arguments
runs=(
  "gateway|gateway.nix|"
  "history|history.nix|"
  "load-balancer|load-balancer.nix|"
  "load-balancer-cert|load-balancer-cert.nix|"
  "message-queue|message-queue.nix|"
  "monitoring|monitoring.nix|"
  "logging|logging.nix|"
  "ci|ci.nix|"
)
for host in $(python3 -c 'import sys, tomllib; print(" ".join(tomllib.load(open(sys.argv[1], "rb"))["hosts"]))' "$root/nix/fleet.toml"); do
  runs+=("host-$host|host.nix|hostName=\"$host\"")
done
# The VM tests' nodes, as tests/vm/fleet.nix defines them (the fleet's hosts plus client).
vm_nodes=$(nix-instantiate --eval --strict --json -E \
  "builtins.attrNames (import $root/tests/vm/fleet.nix { lib = import $subset/lib; }).nodes" |
  python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)))')
[ -n "$vm_nodes" ] || die "no VM test nodes found in tests/vm/fleet.nix"
for node in $vm_nodes; do
  runs+=("vm-$node|vm-node.nix|nodeName=\"$node\"")
done

for run in "${runs[@]}"; do
  IFS='|' read -r name module special <<< "$run"
  # deploy-rs and git: the CI module's deploy hook puts them on its PATH.
  args=(-o "$out/$name" --pkg chatstack --pkg chat-client-demo --pkg deploy-rs --pkg git)
  [ -n "$special" ] && args+=(--special "$special")
  echo "== $name"
  set +e
  "$nixeval/render.sh" "${args[@]}" "$root/tests/nixeval/$module" > "$out.$name.log" 2>&1
  rc=$?
  set -e
  grep -E '^\[(ERROR|ASSERT|WARN|OK|SKIP|FAIL)\]|^summary:' "$out.$name.log" || cat "$out.$name.log"
  case $rc in
    0) ;;
    1) status=1 ;;
    *) die "nixeval could not run for $name (see $out.$name.log)" ;;
  esac
  summary+=("$name: $(grep '^summary:' "$out.$name.log" | sed 's/^summary: //')")
done

# The rendered chat-gateway/chat-history TOML files must load in the services' own loader
# (unknown keys and bad values are errors there). Needs the project venv (make venv).
python=$root/.venv/bin/python
if [ -x "$python" ]; then
  echo "== service configs through chatstack.config.load_config"
  if ! PYTHONPATH="$root/services" "$python" - "$out" <<'PY'; then
import json, subprocess, sys, tempfile
from pathlib import Path
from chatstack.config import ConfigError, load_config

out = Path(sys.argv[1])
units = sorted(out.glob("*/systemd/services/chat-gateway-*.json")) + sorted(
    out.glob("*/systemd/services/chat-history.json"))
failed = False
with tempfile.TemporaryDirectory() as creds:
    (Path(creds) / "amqp-password").write_text("test-only\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", f"{creds}/key", "-out", f"{creds}/amqp-ca", "-subj", "/CN=test-only",
                    "-days", "1"], check=True, capture_output=True)
    for unit in units:
        exec_start = json.loads(unit.read_text())["serviceConfig"]["ExecStart"].split()
        role = "gateway" if "chat-gateway" in exec_start[0] else "history"
        try:
            config = load_config(role, exec_start[-1], {"CREDENTIALS_DIRECTORY": creds, "STATE_DIRECTORY": creds})
            print(f"ok   {unit.parent.parent.parent.name}/{unit.stem}: {config.instance} on {config.http.host}:{config.http.port}")
        except ConfigError as exc:
            failed = True
            print(f"FAIL {unit.parent.parent.parent.name}/{unit.stem}: {exc}")
sys.exit(1 if failed else 0)
PY
    status=1
  fi
else
  echo "== (skipped: no $root/.venv; run 'make venv' to also check the rendered service configs)"
fi

# The node settings of the contract reach every rendered rabbitmq.conf as the local stack
# writes them (services/tests/integration/test_broker_settings.py starts a broker with them).
echo "== rabbitmq.conf carries contract [rabbitmq_conf]"
if ! python3 - "$out" "$root/services/chatstack/contract.toml" <<'PY'; then
import sys, tomllib
from pathlib import Path

out, contract = Path(sys.argv[1]), tomllib.loads(Path(sys.argv[2]).read_text())
wanted = {f"{key}={value}" for key, value in contract["rabbitmq_conf"].items()}
confs = sorted(out.glob("*/rabbitmq/rabbitmq.conf"))
if not wanted or not confs:
    sys.exit(f"FAIL nothing to compare: {len(wanted)} settings, {len(confs)} rabbitmq.conf files")
failed = False
for conf in confs:
    missing = wanted - set(conf.read_text().splitlines())
    failed |= bool(missing)
    print(f"{'FAIL' if missing else 'ok  '} {conf.relative_to(out)}{': missing ' + ', '.join(sorted(missing)) if missing else ''}")
sys.exit(1 if failed else 0)
PY
  status=1
fi

echo
echo "== summary (outputs in $out)"
printf '  %s\n' "${summary[@]}"
[ "$status" -eq 0 ] && echo "OK" || echo "FINDINGS: see above"
exit "$status"
