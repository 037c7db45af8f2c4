# Where agenix decrypts the fleet's secrets at run time (/run/agenix/<name>, the names of
# nix/secrets/secrets.nix), as the options of each module take them. The dummy hosts point
# the modules here; the fleet hosts use config.age.secrets.<name>.path instead.
let
  at = name: "/run/agenix/${name}";
  caFile = at "amqp-ca-cert";
in
{
  gateway = {
    amqpPasswordFile = at "amqp-gateway-password";
    amqpCaFile = caFile;
  };

  history = {
    amqpPasswordFile = at "amqp-history-password";
    amqpCaFile = caFile;
  };

  messageQueue = {
    tls = {
      certificateFile = at "rabbitmq-tls-cert";
      keyFile = at "rabbitmq-tls-key";
      inherit caFile;
    };
    passwordFiles = {
      gateway = at "amqp-gateway-password";
      history = at "amqp-history-password";
    };
    erlangCookieFile = at "rabbitmq-erlang-cookie";
  };
}
