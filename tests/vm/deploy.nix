# vm-deploy: the deploy step of the pipeline, end to end, in the style of deploy-rs' own
# nix/tests. A `deployer` runs hydra/deploy-hook, as hydra-notify would, on a stand-in
# $HYDRA_JSON for a green chatstack:main:release whose deploy plan names a commit of a local
# checkout (./deploy/checkout-flake.nix, built offline from inputs already in the VM's store: the
# deploy-rs tests' `allDrvOutputs` trick). The `app` node boots release v1 of
# ./deploy/target.nix; the hook deploys v2 with deploy-rs (live and serving), then a broken v3
# that closes SSH, which magic rollback undoes while the chat keeps answering. The script is
# ./deploy.py.
#
# Wired with the flake's inputs as a module argument:
#   pkgs.testers.runNixOSTest { imports = [ ../tests/vm/deploy.nix ]; _module.args.inputs = inputs; }
{ lib, inputs, ... }:
let
  contract = import ../../nix/contract.nix;

  # The deploy plan's fleet here: the one app host (nix/deploy-plan.nix reads these keys).
  fleet = {
    deploy_order = [ "app" ];
    hosts.app.role = "app";
  };

  # Every source the checkout's flake.lock resolves to (the repository's flake.lock): with
  # them in the store, `nix flake lock` and the evaluation in the VM fetch nothing.
  flakeSources = map (input: "${input}") [
    inputs.self
    inputs.nixpkgs
    inputs.agenix
    inputs.agenix.inputs.systems
    inputs.deploy-rs
    inputs.deploy-rs.inputs.utils
    inputs.deploy-rs.inputs.utils.inputs.systems
    inputs.poetry2nix
  ];

  # The node that plays hydra-notify: the hook, deploy-rs, the checkout and what building
  # its releases offline needs.
  deployerNode =
    { nodes, pkgs, ... }:
    let
      inherit (import (pkgs.path + "/nixos/tests/ssh-keys.nix") pkgs) snakeOilPrivateKey;

      # Every output of every derivation the app's system is built from (deploy-rs'
      # nix/tests/default.nix): what building v2 and v3 here needs, without a cache.
      allDrvOutputs =
        drv:
        pkgs.runCommand "all-drv-outputs" { refs = pkgs.writeClosure [ drv.drvPath ]; } ''
          touch $out
          while read ref; do
            case $ref in
              *.drv) cat $ref >> $out ;;
            esac
          done < $refs
        '';

      flake = pkgs.writeText "flake.nix" (
        lib.replaceStrings [ "@chatstack@" ] [ "${inputs.self}" ] (builtins.readFile ./deploy/checkout-flake.nix)
      );
      network = pkgs.writeText "network.json" (builtins.toJSON nodes.app.system.build.networkConfig);
      fleetJson = pkgs.writeText "fleet.json" (builtins.toJSON fleet);

      hookConfig = pkgs.writeText "deploy-hook.json" (
        builtins.toJSON {
          project = "chatstack";
          jobset = "main";
          job = "release";
          flake = "git+file:///root/chatstack-checkout";
          state_dir = "/var/lib/chatstack-deploy";
          # ConnectTimeout: a confirmation attempt through the closed port fails at once.
          ssh_opts = "-i /etc/chatstack-deploy-test/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5";
        }
      );

      # `prepare`: the checkout, one commit per release (v2 good, v3 broken); prints their
      # revisions. `release REV BUILD`: what Hydra would hand the hook for a green release
      # of REV as build BUILD (the aggregate's constituents list and the deploy plan from
      # nix/deploy-plan.nix), then runs the hook; its exit status is the hook's.
      driver = pkgs.writeShellScriptBin "chatstack-deploy-test" ''
        set -euo pipefail
        export PATH=${
          lib.makeBinPath [
            pkgs.coreutils
            pkgs.git
            pkgs.jq
            pkgs.nix
            pkgs.openssh
            pkgs.python3
            pkgs.deploy-rs
          ]
        }
        repo=/root/chatstack-checkout
        commit() {
          git -C "$repo" add -A
          git -C "$repo" -c user.name=test -c user.email=test@example.invalid commit -q -m "$1"
        }
        case "$1" in
          prepare)
            rm -rf "$repo"
            mkdir -p "$repo"
            git -C "$repo" init -q -b main
            cp ${flake} "$repo/flake.nix"
            cp ${network} "$repo/network.json"
            echo '{"generation": "v2", "broken": false}' > "$repo/release.json"
            git -C "$repo" add -A
            (cd "$repo" && nix flake lock)
            commit v2
            good=$(git -C "$repo" rev-parse HEAD)
            echo '{"generation": "v3", "broken": true}' > "$repo/release.json"
            commit "v3: closes the SSH port"
            broken=$(git -C "$repo" rev-parse HEAD)
            jq -n --arg good "$good" --arg broken "$broken" '{good: $good, broken: $broken}'
            ;;
          release)
            rev=$2
            build=$3
            work=$(mktemp -d)
            plan=$work/00000000000000000000000000000000-chatstack-deploy-plan-$rev
            out=$work/00000000000000000000000000000001-chatstack-release-$rev
            mkdir -p "$plan" "$out/nix-support"
            nix-instantiate --eval --strict --json \
              --arg fleet "builtins.fromJSON (builtins.readFile ${fleetJson})" \
              --argstr revision "$rev" \
              --arg lastModified "$(git -C "$repo" log -1 --format=%ct "$rev")" \
              ${../../nix/deploy-plan.nix} > "$plan/deploy-plan.json"
            echo "$plan" > "$out/nix-support/hydra-aggregate-constituents"
            jq -n --arg rev "$rev" --argjson build "$build" --arg out "$out" '{
              event: "buildFinished", build: $build, finished: true, timestamp: 0,
              project: "chatstack", jobset: "main", job: "release",
              drvPath: "", startTime: 0, stopTime: 0, buildStatus: 0,
              nixName: ("chatstack-release-" + $rev), system: "x86_64-linux",
              homepage: null, description: null, license: null,
              outputs: [{name: "out", path: $out}], products: [], metrics: []
            }' > "$work/hydra.json"
            HYDRA_JSON=$work/hydra.json exec python3 ${../../hydra/deploy-hook} --config ${hookConfig}
            ;;
          *)
            echo "usage: chatstack-deploy-test prepare | release REV BUILD" >&2
            exit 2
            ;;
        esac
      '';
    in
    {
      environment.systemPackages = [
        driver
        pkgs.chatstack # chat-probe
        pkgs.curl
        pkgs.deploy-rs
        pkgs.git
        pkgs.jq
      ];
      environment.etc = {
        "chatstack-deploy-test/id_ed25519" = {
          source = snakeOilPrivateKey;
          mode = "0600";
        };
        # Facts the script needs, from where they are defined.
        "chatstack-deploy-test/facts.json".text = builtins.toJSON {
          port = contract.ports.embedded;
          state_dir = "/var/lib/chatstack-deploy";
        };
      };
      nix.settings = {
        experimental-features = [
          "nix-command"
          "flakes"
        ];
        substituters = lib.mkForce [ ];
      };
      virtualisation = {
        memorySize = 4096;
        cores = 2;
        diskSize = 8192;
        writableStore = true;
        additionalPaths = flakeSources ++ [ (allDrvOutputs nodes.app.system.build.toplevel) ];
      };
    };
in
{
  name = "chatstack-deploy";

  nodes = {
    app =
      { ... }:
      {
        imports = [ (import ./deploy/target.nix { generation = "v1"; broken = false; }) ];
        virtualisation.memorySize = 1536;
      };

    deployer = deployerNode;
  };

  testScript = builtins.readFile ./deploy.py;
}
