# hydraJobs.<group>.<name>.<system>; Hydra names a job by its attribute path, e.g.
# `packages.chatstack.x86_64-linux` or `hosts.mq.x86_64-linux`.
#   packages  every package on every system
#   hosts     every host's system closure
#   checks    the checks that are not already a package or host job (deploy-*, later vm-*)
# Still to come with the VM-test issue:
#   vm-tests  the NixOS VM tests (also in `checks` as vm-*)
#   release   pkgs.releaseTools.aggregate over all of the above on x86_64-linux; the deploy
#             hook (hydra/) deploys when `release` succeeds on main
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

  isPackageOrHost = name: lib.hasPrefix "package-" name || lib.hasPrefix "host-" name;
in
{
  packages = transpose (lib.mapAttrs (_: pkgs: removeAttrs pkgs [ "default" ]) self.packages);

  hosts = lib.mapAttrs (_: host: {
    ${common.hostSystem} = host.config.system.build.toplevel;
  }) self.nixosConfigurations;

  checks = transpose (
    lib.mapAttrs (_: checks: lib.filterAttrs (name: _: !isPackageOrHost name) checks) self.checks
  );
}
