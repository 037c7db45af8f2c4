# nixeval dummy host: the load-balancer module with a given certificate (as in VM tests).
{
  imports = [ ../../modules/load-balancer.nix ];

  networking.hostName = "lb-test";

  services.chatstack.loadBalancer = {
    enable = true;
    domain = "chat.example.org";
    gatewayServers = [ "192.0.2.11:8101" ];
    historyServers = [ "192.0.2.20:8201" ];
    tls = {
      certificateFile = "/etc/chatstack-test/lb.crt";
      keyFile = "/etc/chatstack-test/lb.key";
    };
  };
}
