# nixosModules: one per file in ../modules (gateway, history, load-balancer, message-queue,
# monitoring, logging, ...), named after the file, and `default` = ../modules/default.nix,
# which imports them all. ../modules/lib.nix is a helper the modules import, not a module.
# The modules expect pkgs.chatstack and pkgs.chat-client-demo: add overlays.default to
# nixpkgs.overlays (nixos-configurations.nix does) or set their `package` options.
{ nixpkgs, ... }:
let
  inherit (nixpkgs) lib;
  notRoles = [
    "default.nix"
    "lib.nix"
  ];
  files = lib.filterAttrs (
    name: type: type == "regular" && lib.hasSuffix ".nix" name && !(lib.elem name notRoles)
  ) (builtins.readDir ../modules);
in
lib.mapAttrs' (
  name: _: lib.nameValuePair (lib.removeSuffix ".nix" name) (../modules + "/${name}")
) files
// {
  default = ../modules/default.nix;
}
