# nixeval dummy host: the message-queue module alone, secrets at runtime paths.
{
  imports = [ ../../modules/message-queue.nix ];

  networking.hostName = "mq-test";
  networking.nftables.enable = true;

  services.chatstack.messageQueue = {
    enable = true;
    tls = {
      certificateFile = "/run/agenix/rabbitmq-tls-cert";
      keyFile = "/run/agenix/rabbitmq-tls-key";
      caFile = "/run/agenix/amqp-ca-cert";
    };
    passwordFiles = {
      gateway = "/run/agenix/amqp-gateway-password";
      history = "/run/agenix/amqp-history-password";
    };
    erlangCookieFile = "/run/agenix/rabbitmq-erlang-cookie";
    openFirewall = true;
    allowedSources = [
      "192.0.2.11"
      "192.0.2.12"
    ];
  };
}
