# nixeval dummy host: monitoring on a host that runs everything (all collectors and checks).
let
  secrets = import ./secret-paths.nix;
in
{
  imports = [
    ../../modules
    ./nixos-defaults.nix
  ];

  networking.hostName = "all-in-one";

  services.chatstack.monitoring = {
    enable = true;
    notifications = {
      email = [ "ops@example.com|critical" ];
      webhookUrlFile = "/run/agenix/netdata-webhook-url";
    };
  };

  services.nginx = {
    enable = true;
    statusPage = true;
  };

  services.chatstack.messageQueue = secrets.messageQueue // {
    enable = true;
  };

  services.chatstack.gateway = secrets.gateway // {
    enable = true;
    instances = {
      "1" = { };
      "2" = { };
    };
    settings.http.host = "0.0.0.0";
  };

  services.chatstack.history = secrets.history // {
    enable = true;
  };
}
