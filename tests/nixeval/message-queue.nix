# nixeval dummy host: the message-queue module alone, secrets at runtime paths.
let
  secrets = import ./secret-paths.nix;
in
{
  imports = [
    ../../modules/message-queue.nix
    ./nixos-defaults.nix
  ];

  networking.hostName = "mq-test";
  networking.nftables.enable = true;

  services.chatstack.messageQueue = secrets.messageQueue // {
    enable = true;
    openFirewall = true;
    allowedSources = [
      "192.0.2.11"
      "192.0.2.12"
    ];
  };
}
