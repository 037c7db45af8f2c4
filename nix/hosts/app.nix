# Role app: chat-gateway instances, reachable from the load balancers only, talking AMQPS to
# the mq host.
{
  config,
  lib,
  chatstackHost,
  ...
}:
let
  inherit (chatstackHost)
    host
    fleet
    topology
    secretFile
    ;
  secrets = config.age.secrets;
  gateway = config.services.chatstack.gateway;
in
{
  # Root-only files: systemd reads them for the units' LoadCredential.
  age.secrets = {
    amqp-gateway-password.file = secretFile "amqp-gateway-password";
    amqp-ca-cert.file = secretFile "amqp-ca-cert";
  };

  services.chatstack.gateway = {
    enable = true;
    # Instances "1".."N" listen on the ports the load balancer's upstream lists.
    instances = lib.genAttrs (map toString (lib.range 1 (topology.gatewayInstances host))) (_: { });
    settings = {
      http = {
        host = host.address;
        # nginx is the only client: trust its X-Real-IP / X-Forwarded-* headers.
        xheaders = true;
      };
      gateway.allowed_origins = [ "https://${fleet.domain}" ];
      broker.host = topology.mq.address;
      statsd.host = "127.0.0.1";
    };
    amqpPasswordFile = secrets.amqp-gateway-password.path;
    amqpCaFile = secrets.amqp-ca-cert.path;
    openFirewall = true;
    allowedSources = topology.lbAddresses;
  };

  # A rotated secret is a new .age file (a new store path): restart the gateways on it.
  systemd.services = lib.mapAttrs' (
    name: _:
    lib.nameValuePair "chat-gateway-${name}" {
      restartTriggers = [
        secrets.amqp-gateway-password.file
        secrets.amqp-ca-cert.file
      ];
    }
  ) gateway.instances;
}
