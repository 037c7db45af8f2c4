# checks.<system>, run by `nix flake check` (and by deploy-rs before a deploy, unless it is
# given --skip-checks). Cheap before expensive:
#   package-<name>  every package; package-chatstack runs the Python unit and property tests
#   host-<name>     every host's system closure (x86_64-linux)
#   deploy-schema, deploy-activate  deploy-rs's own checks of `deploy` (x86_64-linux only:
#                   deploy-activate builds every host, so mapping it over all systems would
#                   build them once per system)
#   vm-<name>       NixOS VM tests (the VM-test issue adds the others, see below); vm-deploy is
#                   tests/vm/deploy.nix, the pipeline's deploy step
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

  # VM tests: tests/vm/<name>.nix wrapped once with pkgs.testers.runNixOSTest (the overlaid
  # pkgs, so nodes have pkgs.chatstack). vm-deploy builds the repository's own flake inside the
  # VM, so it takes the flake inputs as a module argument.
  vmChecks = {
    vm-deploy = common.pkgsFor.${common.hostSystem}.testers.runNixOSTest {
      imports = [ ../tests/vm/deploy.nix ];
      _module.args.inputs = inputs;
    };
  };
in
common.forAllSystems (
  system:
  packageChecks system
  // lib.optionalAttrs (system == common.hostSystem) (hostChecks // deployChecks // vmChecks)
)
