# nixeval dummy host: monitoring on a host that runs everything (all collectors and checks).
{
  imports = [ ../../modules ];

  networking.hostName = "all-in-one";

  services.chatstack.monitoring.enable = true;

  services.nginx = {
    enable = true;
    statusPage = true;
  };

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
  };

  services.chatstack.gateway = {
    enable = true;
    instances = {
      "1" = { };
      "2" = { };
    };
    settings.http.host = "0.0.0.0";
    amqpPasswordFile = "/run/agenix/amqp-gateway-password";
    amqpCaFile = "/run/agenix/amqp-ca-cert";
  };

  services.chatstack.history = {
    enable = true;
    amqpPasswordFile = "/run/agenix/amqp-history-password";
    amqpCaFile = "/run/agenix/amqp-ca-cert";
  };
}
