# TEST-ONLY (vm-deploy): the app host the deploy VM test deploys to, as a function of the
# release it runs: `{ generation = "v1"; broken = false; }`. The `app` node boots release v1;
# the deployer's checkout (./checkout-flake.nix) builds v2 and a broken v3 from this same file.
# It serves the chat as `chatstack serve` (gateway, history and client in one process) and
# names its generation in the instance (GET /healthz answers it).
release:
{ pkgs, ... }:
let
  contract = import ../../../nix/contract.nix;
  inherit (import (pkgs.path + "/nixos/tests/ssh-keys.nix") pkgs) snakeOilPublicKey;
in
{
  # nixos-test-base.nix leaves switch-to-configuration out of test systems; deploy-rs
  # activates a generation with it, and rolls back to one with it.
  system.switch.enable = true;
  virtualisation.writableStore = true;

  services.openssh = {
    enable = true;
    # The broken release closes the SSH port: activation succeeds, but deploy-rs can no
    # longer confirm it over a new connection, so the host rolls back (magic rollback).
    openFirewall = !release.broken;
  };
  users.users.root.openssh.authorizedKeys.keys = [ snakeOilPublicKey ];

  networking.firewall.allowedTCPPorts = [ contract.ports.embedded ];
  environment.etc."chatstack-release".text = release.generation;

  systemd.services.chatstack-serve = {
    wantedBy = [ "multi-user.target" ];
    after = [ "network.target" ];
    environment = {
      CHATSTACK_INSTANCE = "app-${release.generation}";
      CHATSTACK_HISTORY__DATABASE = "/var/lib/chatstack-serve/history.sqlite3";
      # The deployer reaches it as http://app:<port>; any other name is answered 421.
      CHATSTACK_HTTP__ALLOWED_HOSTS = "app";
    };
    serviceConfig = {
      ExecStart = "${pkgs.chatstack}/bin/chatstack serve --host 0.0.0.0 --port ${toString contract.ports.embedded}";
      DynamicUser = true;
      StateDirectory = "chatstack-serve";
      Restart = "on-failure";
    };
  };
}
