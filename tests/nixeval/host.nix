# nixeval: one example host exactly as nix/nixos-configurations.nix assembles it (all chatstack
# modules + the module nix/hosts/default.nix returns for it; nixeval adds agenix itself).
# The host is chosen with `render.sh --special 'hostName="app-1"'`.
{ lib, hostName, ... }:
let
  hosts = import ../../nix/hosts {
    inherit lib;
    fleet = builtins.fromTOML (builtins.readFile ../../nix/fleet.toml);
  };
in
{
  imports = [
    ./nixos-defaults.nix
    ../../modules
    hosts.${hostName}
  ];
}
