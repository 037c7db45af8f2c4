# vm-chat: the fleet boots from its host code and chats through the load balancer: every
# chat-probe flow passes from the client, members on app1 and app2 hear each other, the
# history API answers through lb, and the RabbitMQ provisioning unit made the users.
# The nodes are the fleet's (./fleet.nix); the script is ./chat.py.
{ lib, ... }:
let
  fleet = import ./fleet.nix { inherit lib; };
in
{
  name = "chatstack-chat";
  inherit (fleet) defaults;
  nodes = {
    lb = fleet.nodes.lb;
    app1 = fleet.nodes.app1;
    app2 = fleet.nodes.app2;
    mq = fleet.nodes.mq;
    client = fleet.nodes.client;
  };
  testScript = builtins.readFile ./chat.py;
}
