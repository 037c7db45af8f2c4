# nixeval dummy host: the gateway module alone, two instances, secrets at runtime paths.
let
  secrets = import ./secret-paths.nix;
in
{
  imports = [ ../../modules/gateway.nix ];

  networking.hostName = "app-test";

  services.chatstack.gateway = secrets.gateway // {
    enable = true;
    instances = {
      "1" = { };
      "2" = { };
    };
    settings = {
      http.host = "192.0.2.11";
      broker.host = "192.0.2.20";
    };
    openFirewall = true;
    allowedSources = [ "192.0.2.10" ];
  };
}
