# deploy (deploy-rs): one node per [hosts.<name>] row of fleet.toml, reached at its `address`
# as `ssh_user`, activating the host's nixosConfiguration as root (sudo on the host).
#
# Magic rollback: after switching, deploy-rs must reach the host again over a new SSH
# connection within confirmTimeout, or the host rolls itself back. Auto rollback: a failed
# activation switches back to the previous generation.
#
# App hosts go one at a time: deploy-rs activates the selected nodes strictly one after the
# other. cli.rs `run_deploy` awaits `deploy_profile` for each node in a plain loop, and
# `deploy_profile` (deploy.rs) returns only after the remote activation has finished and been
# confirmed. So app-1's gateway has restarted, and its switch was confirmed, before app-2
# starts. If a node fails, the run stops there, and the nodes done before it are rolled back
# (`--rollback-succeeded`, default true). docs/deploying.md gives the command that fixes the
# order.
inputs@{ nixpkgs, deploy-rs, ... }:
let
  inherit (nixpkgs) lib;
  inherit (import ./lib.nix inputs) fleet hostSystem activationTimeout;

  # deploy-rs README, "deployPkgs": deploy-rs's activation helpers with nixpkgs' deploy-rs
  # binary (in the binary cache), instead of building deploy-rs from its flake's sources.
  pkgs = nixpkgs.legacyPackages.${hostSystem};
  deployPkgs = import nixpkgs {
    system = hostSystem;
    overlays = [
      deploy-rs.overlays.default
      (_final: prev: {
        deploy-rs = {
          inherit (pkgs) deploy-rs;
          inherit (prev.deploy-rs) lib;
        };
      })
    ];
  };
in
{
  nodes = lib.mapAttrs (
    name: host:
    let
      system = inputs.self.nixosConfigurations.${name};
    in
    {
      hostname = host.address;
      sshUser = fleet.ssh_user;
      user = "root";
      magicRollback = true;
      autoRollback = true;
      # Per host, so per role: the mq host waits for RabbitMQ and its provisioning units.
      activationTimeout = activationTimeout system.config;
      profiles.system.path = deployPkgs.deploy-rs.lib.activate.nixos system;
    }
  ) fleet.hosts;
}
