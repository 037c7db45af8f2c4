# hydraJobs.<group>.<name>.<system>; Hydra names a job by its attribute path, e.g.
# `packages.chatstack.x86_64-linux` or `hosts.mq.x86_64-linux`.
#   packages     every package on every system
#   hosts        every host's system closure
#   checks       the checks that are not already a package, host or VM-test job (deploy-*)
#   vm-tests     the NixOS VM tests, `vm-tests.<name>.x86_64-linux` (also `checks` vm-<name>);
#                the builder needs the `kvm` and `nixos-test` system features
#   release      the gate: pkgs.releaseTools.aggregate over every check on x86_64-linux (so
#                every x86_64 package, every host's toplevel, the deploy-rs checks and every
#                vm-* test, whatever is added to nix/checks.nix later) plus the deploy plan;
#                it succeeds only when all of them do. A green `release` on main is what
#                hydra/deploy-hook deploys.
#   deploy-plan  nix/deploy-plan.nix at this revision: the commit, its time and the host
#                order from fleet.toml. The hook reads it from release's constituents, so it
#                deploys exactly the revision Hydra evaluated.
inputs@{ self, ... }:
let
  inherit (inputs.nixpkgs) lib;
  common = import ./lib.nix inputs;

  # { <system> = { <name> = drv; }; } -> { <name> = { <system> = drv; }; }
  transpose =
    bySystem:
    lib.foldlAttrs (
      acc: system: jobs:
      lib.recursiveUpdate acc (lib.mapAttrs (_: job: { ${system} = job; }) jobs)
    ) { } bySystem;

  # Checks that have a group of their own below.
  grouped = name: lib.any (prefix: lib.hasPrefix prefix name) [ "package-" "host-" "vm-" ];

  pkgs = common.pkgsFor.${common.hostSystem};

  # The commit this evaluation is of. A dirty tree has no `rev`: its release is named
  # `-dirty` and the hook refuses it.
  revisionTag = self.rev or "dirty";

  deployPlan = pkgs.writeTextFile {
    name = "chatstack-deploy-plan-${revisionTag}";
    destination = "/deploy-plan.json";
    text = builtins.toJSON (
      import ./deploy-plan.nix {
        inherit (common) fleet;
        revision = self.rev or null;
        lastModified = self.lastModified or 0;
      }
    );
  };
in
{
  deploy-plan = deployPlan;

  # hydra/deploy-hook checks that the build's name is chatstack-release-<the plan's revision>.
  release = pkgs.releaseTools.aggregate {
    name = "chatstack-release-${revisionTag}";
    constituents = [ deployPlan ] ++ lib.attrValues self.checks.${common.hostSystem};
    meta.description = "chatstack release gate: every x86_64-linux check and the deploy plan";
  };

  packages = transpose (lib.mapAttrs (_: pkgs: removeAttrs pkgs [ "default" ]) self.packages);

  hosts = lib.mapAttrs (_: host: {
    ${common.hostSystem} = host.config.system.build.toplevel;
  }) self.nixosConfigurations;

  vm-tests = lib.mapAttrs' (
    name: test: lib.nameValuePair (lib.removePrefix "vm-" name) { ${common.hostSystem} = test; }
  ) (lib.filterAttrs (name: _: lib.hasPrefix "vm-" name) self.checks.${common.hostSystem});

  checks = transpose (
    lib.mapAttrs (_: checks: lib.filterAttrs (name: _: !grouped name) checks) self.checks
  );
}
