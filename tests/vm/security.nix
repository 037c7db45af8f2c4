# vm-security: what an attacker on the network or the hosts would try: no plaintext
# AMQP, epmd or Erlang distribution from other hosts, guest refused, TLS without the fleet CA
# refused, no secret in command lines, the journal or world-readable files, units sandboxed.
# The nodes are the fleet's (./fleet.nix); the script is ./security.py.
{ lib, ... }:
let
  fleet = import ./fleet.nix { inherit lib; };
in
{
  name = "chatstack-security";
  inherit (fleet) defaults;
  nodes = {
    lb = fleet.nodes.lb;
    app1 = fleet.nodes.app1;
    app2 = fleet.nodes.app2;
    mq = fleet.nodes.mq;
    client = fleet.nodes.client;
  };
  testScript = builtins.readFile ./security.py;
}
