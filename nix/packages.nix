# packages.<system>: the Python services (chatstack), the static client (chat-client-demo) and
# the secrets operator command (fleet-secrets). chatstack and chat-client-demo come from
# overlays.default, so hosts and `nix build` get the same derivations.
inputs:
let
  common = import ./lib.nix inputs;
in
common.forAllPkgs (pkgs: {
  inherit (pkgs) chatstack chat-client-demo;
  fleet-secrets = pkgs.callPackage ./fleet-secrets.nix { };
  default = pkgs.chatstack;
})
