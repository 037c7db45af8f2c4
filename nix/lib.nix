# Helpers shared by the files under nix/ that build the flake outputs. Takes the flake
# inputs (self included), returns plain values; no output is defined here.
{ self, nixpkgs, ... }:
let
  inherit (nixpkgs) lib;
in
rec {
  # Systems the packages, apps, dev shells and formatter are built for.
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # Every host of the fleet runs this system (nixosConfigurations, deploy.nodes, host-* checks).
  hostSystem = "x86_64-linux";

  forAllSystems = lib.genAttrs systems;

  # { <system> = f pkgs; } with that system's pkgsFor: the outputs that need nothing else.
  forAllPkgs = f: lib.mapAttrs (_system: f) pkgsFor;

  # nixpkgs with our overlay (pkgs.chatstack, pkgs.chat-client-demo), one instance per system.
  pkgsFor = lib.genAttrs systems (
    system:
    import nixpkgs {
      inherit system;
      overlays = [ self.overlays.default ];
    }
  );

  # The host table: name -> role/address/host_key, admins, secrets (nix/fleet.toml).
  fleet = lib.importTOML ./fleet.toml;
}
