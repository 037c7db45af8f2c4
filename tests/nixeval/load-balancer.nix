# nixeval dummy host: the load-balancer module with ACME (production-like).
{
  imports = [ ../../modules/load-balancer.nix ];

  networking.hostName = "lb-test";
  security.acme = {
    acceptTerms = true;
    defaults.email = "ops@example.org";
  };

  services.chatstack.loadBalancer = {
    enable = true;
    domain = "chat.example.org";
    gatewayServers = [
      "192.0.2.11:8101"
      "192.0.2.11:8102"
      "192.0.2.12:8101"
    ];
    historyServers = [ "192.0.2.20:8201" ];
    openFirewall = true;
  };
}
