# overlays.default: adds pkgs.chatstack (the Python services) and pkgs.chat-client-demo (the
# static browser client). The NixOS modules find them with
# `lib.mkPackageOption pkgs "chatstack" { }`, so a host needs this overlay in nixpkgs.overlays.
{ poetry2nix, ... }:
final: _prev: {
  chatstack = final.callPackage ./package.nix { inherit poetry2nix; };
  chat-client-demo = final.callPackage ./client.nix { };
}
