# The NixOS VM tests: { <name> = <test derivation>; } for every tests/vm/<name>.nix (the test
# modules; tests/vm/fleet.nix is their shared node wiring, not a test). Each is a plain test
# module wrapped once with pkgs.testers.runNixOSTest; every node also gets the chatstack modules
# and agenix, as nixosConfigurations' hosts do. x86_64-linux only: the tests need KVM.
inputs@{ self, agenix, ... }:
let
  inherit (inputs.nixpkgs) lib;
  common = import ./lib.nix inputs;
  # The overlaid nixpkgs (pkgs.chatstack), also the nodes' pkgs (runNixOSTest sets node.pkgs).
  pkgs = common.pkgsFor.${common.hostSystem};

  testsDir = ../tests/vm;
  names = map (lib.removeSuffix ".nix") (
    lib.filter (file: lib.hasSuffix ".nix" file && file != "fleet.nix") (
      lib.attrNames (builtins.readDir testsDir)
    )
  );
in
lib.genAttrs names (
  name:
  pkgs.testers.runNixOSTest {
    imports = [ (testsDir + "/${name}.nix") ];
    # vm-deploy builds this repository's flake inside a VM from its inputs.
    _module.args.inputs = inputs;
    defaults.imports = [
      self.nixosModules.default
      agenix.nixosModules.default
    ];
  }
)
