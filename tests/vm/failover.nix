# vm-failover: app1 loses power (app1.crash()) while users chat through lb; they move to
# app2, every acked message is in history exactly once, and app1 rejoins the upstream when it
# boots again.
# The nodes are the fleet's (./fleet.nix); the script is ./failover.py.
{ lib, ... }:
let
  fleet = import ./fleet.nix { inherit lib; };
in
{
  name = "chatstack-failover";
  inherit (fleet) defaults;
  nodes = {
    lb = fleet.nodes.lb;
    app1 = fleet.nodes.app1;
    app2 = fleet.nodes.app2;
    mq = fleet.nodes.mq;
    client = fleet.nodes.client;
  };
  testScript = builtins.readFile ./failover.py;
}
