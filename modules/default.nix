# Every chatstack NixOS module; each is off until its `enable` is set.
{
  imports = [
    ./ci.nix
    ./gateway.nix
    ./history.nix
    ./load-balancer.nix
    ./logging.nix
    ./message-queue.nix
    ./monitoring.nix
  ];
}
