# TEST-ONLY (vm-deploy): flake.nix of the deployer's checkout. @chatstack@ becomes the
# repository's own source (a store path), so every input is one the repository's flake.lock
# already pins and the test VM has in its store: nothing is fetched. release.json (the
# generation) and network.json (the app node's test network, as deploy-rs' own tests do) sit
# next to it; each commit of the checkout is one release.
{
  inputs.chatstack.url = "path:@chatstack@";

  outputs =
    { chatstack, ... }:
    let
      inherit (chatstack.inputs) nixpkgs deploy-rs;
      inherit (nixpkgs) lib;
      system = "x86_64-linux";

      # As nix/deploy.nix: deploy-rs' activation helpers with nixpkgs' deploy-rs binary.
      deployPkgs = import nixpkgs {
        inherit system;
        overlays = [
          deploy-rs.overlays.default
          (_final: prev: {
            deploy-rs = {
              inherit (nixpkgs.legacyPackages.${system}) deploy-rs;
              inherit (prev.deploy-rs) lib;
            };
          })
        ];
      };

      app = lib.nixosSystem {
        inherit system;
        modules = [
          { nixpkgs.overlays = [ chatstack.overlays.default ]; }
          # What every NixOS test node has (qemu-vm, the test driver's backdoor), and the app
          # node's test network: a deployed generation must stay reachable in the test.
          (nixpkgs + "/nixos/lib/testing/nixos-test-base.nix")
          (lib.importJSON ./network.json)
          (import (chatstack + "/tests/vm/deploy/target.nix") (lib.importJSON ./release.json))
        ];
      };
    in
    {
      deploy.nodes.app = {
        hostname = "app";
        sshUser = "root";
        user = "root";
        magicRollback = true;
        # Long enough for the test to see the broken generation before it is rolled back.
        confirmTimeout = 120;
        profiles.system.path = deployPkgs.deploy-rs.lib.activate.nixos app;
      };
    };
}
