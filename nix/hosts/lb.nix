# Role lb: nginx in front of every gateway instance and chat-history, with an ACME certificate
# for fleet.domain.
{ chatstackHost, ... }:
let
  inherit (chatstackHost) fleet topology;
in
{
  services.chatstack.loadBalancer = {
    enable = true;
    inherit (fleet) domain;
    inherit (topology) gatewayServers historyServers;
    openFirewall = true;
  };

  security.acme = {
    acceptTerms = true;
    defaults.email = fleet.acme_email;
  };
}
