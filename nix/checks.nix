# checks.<system>, run by `nix flake check` (and by deploy-rs before a deploy, unless it is
# given --skip-checks). Cheap before expensive:
#   package-<name>  every package; package-chatstack runs the Python unit and property tests
#   host-<name>     every host's system closure (x86_64-linux)
#   deploy-schema, deploy-activate  deploy-rs's own checks of `deploy` (x86_64-linux only:
#                   deploy-activate builds every host, so mapping it over all systems would
#                   build them once per system)
#   vm-<name>       the NixOS VM tests, one per tests/vm/<name>.nix (x86_64-linux only: KVM);
#                   vm-deploy is the pipeline's deploy step
inputs@{ self, deploy-rs, ... }:
let
  inherit (inputs.nixpkgs) lib;
  common = import ./lib.nix inputs;

  prefixed = prefix: lib.mapAttrs' (name: lib.nameValuePair "${prefix}-${name}");

  packageChecks = system: prefixed "package" (removeAttrs self.packages.${system} [ "default" ]);

  hostChecks = prefixed "host" (
    lib.mapAttrs (_: host: host.config.system.build.toplevel) self.nixosConfigurations
  );

  deployChecks = deploy-rs.lib.${common.hostSystem}.deployChecks self.deploy;

  vmChecks = prefixed "vm" (import ./vm-tests.nix inputs);
in
common.forAllSystems (
  system:
  packageChecks system
  // lib.optionalAttrs (system == common.hostSystem) (hostChecks // deployChecks // vmChecks)
)
