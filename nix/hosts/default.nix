# The host leaves: `{ <hostName> = <NixOS module>; }`, one per [hosts.<name>] row of
# ../fleet.toml. A host is common.nix plus the profile of its role (lb.nix, app.nix, mq.nix,
# ci.nix);
# every fact about the fleet (addresses, gateway instances, who may reach which port) comes
# from the table through `topology`, so adding an app host is adding one row.
#
# The profiles receive `chatstackHost = { name, host, fleet, topology, secretFile }` as a
# module argument. Only they know about agenix: they declare age.secrets.<name> with
# `file = secretFile "<name>"` (../secrets/<name>.age) and pass its `.path` to the modules.
# `secretsDir` exists for offline checks (tests/nixeval); nixos-configurations.nix leaves it.
{
  lib,
  fleet,
  secretsDir ? ../secrets,
}:
let
  contract = import ../contract.nix;

  inherit (import ../../modules/lib.nix { inherit lib; }) hostPort;

  withRole = role: lib.filterAttrs (_: host: host.role == role) fleet.hosts;
  addresses = role: lib.mapAttrsToList (_: host: host.address) (withRole role);

  # Gateway processes per app host: the row's `gateway_instances`, else 2 (one can restart
  # while the other serves). Instance N listens on the contract's ports.gateway + N - 1.
  gatewayInstances = host: host.gateway_instances or 2;

  mqHosts = lib.attrValues (withRole "mq");

  topology = {
    inherit gatewayInstances;
    lbAddresses = addresses "lb";
    appAddresses = addresses "app";

    # RabbitMQ and chat-history run on the one mq host (a RabbitMQ cluster is future work).
    mq =
      if lib.length mqHosts == 1 then
        lib.head mqHosts
      else
        throw "nix/fleet.toml: exactly one host with role = \"mq\" is supported, found ${toString (lib.length mqHosts)}";

    # What the load balancer proxies to: every gateway instance of every app host, by address.
    gatewayServers = lib.concatLists (
      lib.mapAttrsToList (
        _: host:
        lib.genList (index: hostPort host.address (contract.ports.gateway + index)) (
          gatewayInstances host
        )
      ) (withRole "app")
    );
    historyServers = map (host: hostPort host.address contract.ports.history) mqHosts;
  };

  profiles = {
    lb = ./lb.nix;
    app = ./app.nix;
    mq = ./mq.nix;
    ci = ./ci.nix;
  };
in
lib.mapAttrs (name: host: {
  imports = [
    ./common.nix
    (
      profiles.${host.role}
        or (throw "nix/fleet.toml: host ${name} has unknown role ${host.role} (lb, app, mq or ci)")
    )
  ];

  _module.args.chatstackHost = {
    inherit
      name
      host
      fleet
      topology
      ;
    secretFile = secretName: secretsDir + "/${secretName}.age";
    # The public half tools/fleet-secrets writes next to an ssh-ed25519 secret.
    publicKeyFile = secretName: secretsDir + "/${secretName}.pub";
  };
}) fleet.hosts
