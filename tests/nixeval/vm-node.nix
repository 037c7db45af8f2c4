# nixeval: one node of the NixOS VM tests exactly as tests/vm/fleet.nix builds it (all chatstack
# modules, the tests' defaults and the node's own module; nixeval adds agenix itself, the test
# framework's own modules are not here). The node is chosen with
# `render.sh --special 'nodeName="mq"'`.
{ lib, nodeName, ... }:
let
  fleet = import ../vm/fleet.nix { inherit lib; };
in
{
  imports = [
    ../../modules
    # NixOS's own 127.0.0.2 <hostname> entry, which test VMs keep too.
    ./nixos-defaults.nix
    fleet.defaults
    fleet.nodes.${nodeName}
  ];
}
