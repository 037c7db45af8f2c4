# nixeval dummy host: the logging module alone.
{
  imports = [ ../../modules/logging.nix ];

  networking.hostName = "logging-test";
  services.chatstack.logging.enable = true;
}
