# Role mq: RabbitMQ (AMQPS to the app hosts only) and chat-history, which reaches the broker on
# this host and serves the load balancers.
{
  config,
  chatstackHost,
  ...
}:
let
  inherit (chatstackHost) host topology secretFile;
  secrets = config.age.secrets;
  # RabbitMQ reads its certificate, key and CA itself (paths in rabbitmq.conf).
  forRabbitmq = name: {
    file = secretFile name;
    owner = "rabbitmq";
    group = "rabbitmq";
  };
in
{
  # Passwords and the cookie stay root-only: systemd reads them for LoadCredential. The CA is
  # owned by rabbitmq and reaches chat-history the same way.
  age.secrets = {
    amqp-gateway-password.file = secretFile "amqp-gateway-password";
    amqp-history-password.file = secretFile "amqp-history-password";
    rabbitmq-erlang-cookie.file = secretFile "rabbitmq-erlang-cookie";
    amqp-ca-cert = forRabbitmq "amqp-ca-cert";
    rabbitmq-tls-cert = forRabbitmq "rabbitmq-tls-cert";
    rabbitmq-tls-key = forRabbitmq "rabbitmq-tls-key";
  };

  services.chatstack.messageQueue = {
    enable = true;
    tls = {
      certificateFile = secrets.rabbitmq-tls-cert.path;
      keyFile = secrets.rabbitmq-tls-key.path;
      caFile = secrets.amqp-ca-cert.path;
    };
    passwordFiles = {
      gateway = secrets.amqp-gateway-password.path;
      history = secrets.amqp-history-password.path;
    };
    erlangCookieFile = secrets.rabbitmq-erlang-cookie.path;
    openFirewall = true;
    allowedSources = topology.appAddresses;
  };

  services.chatstack.history = {
    enable = true;
    settings = {
      http = {
        host = host.address;
        xheaders = true;
      };
      # This host's address is in the broker certificate (tools/fleet-secrets).
      broker.host = host.address;
      statsd.host = "127.0.0.1";
    };
    amqpPasswordFile = secrets.amqp-history-password.path;
    amqpCaFile = secrets.amqp-ca-cert.path;
    openFirewall = true;
    allowedSources = topology.lbAddresses;
  };

  systemd.services = {
    # Its user and queue exist before it connects (it would retry anyway).
    chat-history = {
      wants = [ "chatstack-rabbitmq-setup.service" ];
      after = [ "chatstack-rabbitmq-setup.service" ];
      restartTriggers = [
        secrets.amqp-history-password.file
        secrets.amqp-ca-cert.file
      ];
    };
    # A rotated secret is a new .age file (a new store path): apply it.
    chatstack-rabbitmq-setup.restartTriggers = [
      secrets.amqp-gateway-password.file
      secrets.amqp-history-password.file
    ];
    rabbitmq.restartTriggers = [
      secrets.rabbitmq-erlang-cookie.file
      secrets.rabbitmq-tls-cert.file
      secrets.rabbitmq-tls-key.file
      secrets.amqp-ca-cert.file
    ];
  };
}
