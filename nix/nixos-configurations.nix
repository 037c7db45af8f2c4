# nixosConfigurations.<host>: one NixOS system per [hosts.<name>] row of fleet.toml. The host's
# own settings are the module nix/hosts/default.nix returns for it (`{ lib, fleet }:
# { <name> = <NixOS module>; }`); every host also gets all chatstack modules, agenix and the
# overlay that provides pkgs.chatstack and pkgs.chat-client-demo.
inputs@{
  self,
  nixpkgs,
  agenix,
  ...
}:
let
  inherit (nixpkgs) lib;
  inherit (import ./lib.nix inputs) fleet hostSystem;

  hostModules = import ./hosts { inherit lib fleet; };
  extra = lib.attrNames (removeAttrs hostModules (lib.attrNames fleet.hosts));
in
lib.throwIf (extra != [ ])
  "nix/hosts/default.nix defines hosts that nix/fleet.toml has no row for: ${toString extra}"
  (
    lib.mapAttrs (
      name: _row:
      lib.nixosSystem {
        modules = [
          self.nixosModules.default
          agenix.nixosModules.default
          {
            # The platform as a module option, not nixosSystem's legacy `system` argument.
            nixpkgs.hostPlatform = hostSystem;
            nixpkgs.overlays = [ self.overlays.default ];
          }
          (hostModules.${name} or (throw "nix/hosts/default.nix has no module for host ${name}"))
        ];
      }
    ) fleet.hosts
  )
