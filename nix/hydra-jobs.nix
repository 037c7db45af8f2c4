# hydraJobs.<group>.<name>.<system>; Hydra names a job by its attribute path, e.g.
# `packages.chatstack.x86_64-linux` or `hosts.mq.x86_64-linux`.
#   packages  every package on every system
#   hosts     every host's system closure
#   checks    the checks that are not already a package, host or VM-test job (deploy-*)
#   vm-tests  the NixOS VM tests, `vm-tests.<name>.x86_64-linux` (also `checks` vm-<name>);
#             the builder needs the `kvm` and `nixos-test` system features
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
in
{
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
