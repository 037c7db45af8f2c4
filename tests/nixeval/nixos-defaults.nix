# nixeval: what every real NixOS host defines but the harness's subset does not model.
# nixos/modules/config/networking.nix maps the host name to 127.0.0.2 in /etc/hosts
# (`networking.hosts."127.0.0.2" = hostnames`); message-queue.nix binds epmd and the Erlang
# distribution to that address.
{ config, ... }:
{
  networking.hosts."127.0.0.2" = [ config.networking.hostName ];
}
