# vm-observability: JSON journal lines with instance, level and event; Netdata on every
# host with the chatstack statsd chart counting traffic, the nginx and RabbitMQ collectors and
# the alarms loaded.
# The nodes are the fleet's (./fleet.nix); the script is ./observability.py.
{ lib, ... }:
let
  fleet = import ./fleet.nix { inherit lib; };
in
{
  name = "chatstack-observability";
  inherit (fleet) defaults;
  nodes = {
    lb = fleet.nodes.lb;
    app1 = fleet.nodes.app1;
    app2 = fleet.nodes.app2;
    mq = fleet.nodes.mq;
    client = fleet.nodes.client;
  };
  testScript = builtins.readFile ./observability.py;
}
