# nixeval dummy host: the history module alone, secrets at runtime paths.
{
  imports = [ ../../modules/history.nix ];

  networking.hostName = "mq-test";

  services.chatstack.history = {
    enable = true;
    settings = {
      http.host = "192.0.2.20";
      broker.host = "192.0.2.20";
    };
    amqpPasswordFile = "/run/agenix/amqp-history-password";
    amqpCaFile = "/run/agenix/amqp-ca-cert";
    openFirewall = true;
    allowedSources = [ "192.0.2.10" ];
  };
  networking.nftables.enable = true;
}
