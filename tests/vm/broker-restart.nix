# vm-broker-restart: RabbitMQ goes away and comes back under traffic; every service's
# /readyz goes 503 then 200, says meanwhile get `unavailable` (never an ack), nothing acked is
# lost, history catches up.
# The nodes are the fleet's (./fleet.nix); the script is ./broker-restart.py.
{ lib, ... }:
let
  fleet = import ./fleet.nix { inherit lib; };
in
{
  name = "chatstack-broker-restart";
  inherit (fleet) defaults;
  nodes = {
    lb = fleet.nodes.lb;
    app1 = fleet.nodes.app1;
    app2 = fleet.nodes.app2;
    mq = fleet.nodes.mq;
    client = fleet.nodes.client;
  };
  testScript = builtins.readFile ./broker-restart.py;
}
