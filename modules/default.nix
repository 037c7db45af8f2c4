# Every chatstack NixOS module; each is off until its `enable` is set.
{
  imports = [
    ./gateway.nix
    ./history.nix
    ./load-balancer.nix
    ./logging.nix
    ./message-queue.nix
    ./monitoring.nix
  ];
}
