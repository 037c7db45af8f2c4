# Role ci: Hydra building every jobset of hydra/spec.json, and deploying a green
# chatstack:main:release to the rest of the fleet with deploy-rs (hydra/deploy-hook), in the
# order of fleet.toml's deploy_order. Itself deployed by an operator with deploy-rs, not by
# its own hook (activating this host restarts hydra-notify, which runs the hook).
{
  config,
  lib,
  chatstackHost,
  ...
}:
let
  inherit (chatstackHost) fleet secretFile;
  deployed = lib.filterAttrs (_: host: lib.elem host.role fleet.deploy_order) fleet.hosts;
in
{
  # The key deploy-rs logs in to the fleet with: only hydra-queue-runner (hydra-notify's user)
  # may read it. Its public half is authorized for the deploy user on every host
  # (common.nix, from nix/secrets/hydra-deploy-key.pub that tools/fleet-secrets writes).
  age.secrets.hydra-deploy-key = {
    file = secretFile "hydra-deploy-key";
    owner = "hydra-queue-runner";
    mode = "0400";
  };

  services.chatstack.ci = {
    enable = true;
    domain = fleet.ci.hydra_domain;
    notificationSender = "hydra@${fleet.ci.hydra_domain}";
    openFirewall = true;
    deploy = {
      enable = true;
      inherit (fleet.ci) repository;
      sshKeyFile = config.age.secrets.hydra-deploy-key.path;
      knownHosts = lib.mapAttrs' (_: host: lib.nameValuePair host.address host.host_key) deployed;
    };
  };

  security.acme = {
    acceptTerms = true;
    defaults.email = fleet.acme_email;
  };
}
