# nixeval dummy host: the history module alone, secrets at runtime paths.
let
  secrets = import ./secret-paths.nix;
in
{
  imports = [ ../../modules/history.nix ];

  networking.hostName = "mq-test";

  services.chatstack.history = secrets.history // {
    enable = true;
    settings = {
      http.host = "192.0.2.20";
      broker.host = "192.0.2.20";
    };
    openFirewall = true;
    allowedSources = [ "192.0.2.10" ];
  };
  networking.nftables.enable = true;
}
