# nixeval dummy host: the CI module alone, with a given certificate, deploying two targets.
{
  imports = [ ../../modules/ci.nix ];

  networking.hostName = "ci-test";
  system.stateVersion = "26.05";

  services.chatstack.ci = {
    enable = true;
    domain = "hydra.example.org";
    notificationSender = "hydra@example.org";
    tls = {
      certificateFile = "/etc/chatstack-test/hydra.crt";
      keyFile = "/etc/chatstack-test/hydra.key";
    };
    deploy = {
      enable = true;
      repository = "git+https://git.example.org/chatstack";
      sshKeyFile = "/run/agenix/hydra-deploy-key";
      knownHosts = {
        "192.0.2.20" = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMdbxYRru5tIwj0+0+pNTBjF0ihNzbyapRN2VjKgdDQS";
        "192.0.2.11" = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItiUoue3OAg8ukQLm2mgPflkVR6kfZaMYaNAMEMK9uB";
      };
    };
  };
}
