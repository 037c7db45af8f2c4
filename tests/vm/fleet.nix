# TEST-ONLY: the nodes of the NixOS VM tests, shared by every tests/vm/<name>.nix.
#
# lb, app1, app2 and mq are the fleet's hosts built by the SAME host code as production
# (nix/hosts/default.nix, which nixosConfigurations uses too) from the test fleet
# (./fleet.toml: the test VLAN's addresses, test keys) and its test secrets (./test-keys).
# What a VM needs on top is added here and nowhere else: the committed test host key (the
# agenix identity), a test certificate for the load balancer instead of ACME, VM sizes, and a
# `client` node with chat-probe. The flake adds the chatstack modules and agenix to every
# node (nix/vm-tests.nix).
#
#   let fleet = import ./fleet.nix { inherit lib; }; in
#   { inherit (fleet) defaults; nodes = { lb = fleet.nodes.lb; ... }; }
{ lib }:
let
  fleet = lib.importTOML ./fleet.toml;
  contract = import ../../nix/contract.nix;

  hosts = import ../../nix/hosts {
    inherit lib fleet;
    secretsDir = ./test-keys;
  };

  # Do not copy this: it is insecure, and fine only because these are throwaway test keys
  # (as agenix's test/install_ssh_host_keys.nix). Every node gets the committed host key
  # before agenix decrypts with it (age.identityPaths defaults to the SSH host keys).
  testHostKey = {
    system.activationScripts.installTestHostKey.text = ''
      mkdir -p /etc/ssh
      (umask 0022; cp ${./test-keys/ssh_host_ed25519_key.pub} /etc/ssh/ssh_host_ed25519_key.pub)
      (umask 0077; cp ${./test-keys/ssh_host_ed25519_key} /etc/ssh/ssh_host_ed25519_key)
    '';
    system.activationScripts.agenixInstall.deps = [ "installTestHostKey" ];
  };

  # What the test scripts need to know, from the places that define it, as a file on every
  # node: the scripts read it with json.loads(node.succeed("cat /etc/chatstack-vm-test.json")),
  # so ports and names are never repeated in the Python.
  factsFile =
    { config, ... }:
    let
      gateway = config.services.chatstack.gateway;
      history = config.services.chatstack.history;
    in
    {
      environment.etc."chatstack-vm-test.json".text = builtins.toJSON {
        inherit (contract)
          ports
          routes
          amqp
          statsd
          ;
        metrics = lib.attrNames contract.metrics;
        origin = "https://${fleet.domain}";
        addresses = lib.mapAttrs (_: host: host.address) fleet.hosts;
        # RabbitMQ's own defaults for Erlang (https://www.rabbitmq.com/docs/networking#ports):
        # epmd, and the inter-node distribution port (AMQP port + 20000).
        erlang = {
          epmd_port = 4369;
          distribution_port = contract.ports.amqp + 20000;
        };
        # This node's own services, as its configuration has them.
        gateways = lib.optionalAttrs gateway.enable (
          lib.mapAttrs' (
            name: instance: lib.nameValuePair "chat-gateway-${name}" instance.settings.http.port
          ) gateway.instances
        );
        history = lib.optionalAttrs history.enable { chat-history = history.settings.http.port; };
        secrets = lib.mapAttrs (_: secret: secret.path) config.age.secrets;
      };
    };
in
{
  defaults =
    { pkgs, ... }:
    {
      imports = [
        testHostKey
        factsFile
      ];
      # The hosts' EXAMPLE hardware asks for DHCP; the test VLAN's addresses are static.
      networking.useDHCP = false;
      # What the scripts run on the nodes besides the base system's tools (nc is one: the
      # test driver's own wait_for_open_port uses it).
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
        pkgs.openssl
      ];
    };

  nodes = {
    app1 = hosts.app1;
    app2 = hosts.app2;

    # The origin https://lb with a test certificate instead of ACME (no Let's Encrypt here):
    # the module's own option for it, the key decrypted by agenix like every secret.
    lb =
      { config, ... }:
      {
        imports = [ hosts.lb ];
        age.secrets.lb-tls-key = {
          file = ./test-keys/lb-tls-key.age;
          owner = "nginx";
          group = "nginx";
        };
        services.chatstack.loadBalancer.tls = {
          certificateFile = ./test-keys/lb-tls-cert.pem;
          keyFile = config.age.secrets.lb-tls-key.path;
        };
      };

    # RabbitMQ blocks publishers below its free-disk limit; Erlang, Netdata and chat-history
    # need more than the default 1 GiB of memory.
    mq = {
      imports = [ hosts.mq ];
      virtualisation = {
        diskSize = 2048;
        memorySize = 2048;
      };
    };

    # A user's machine: chat-probe, trusting the origin's test CA.
    client =
      { pkgs, ... }:
      {
        environment.systemPackages = [ pkgs.chatstack ];
        security.pki.certificateFiles = [ ./test-keys/web-ca-cert.pem ];
        system.stateVersion = "26.05";
      };
  };
}
