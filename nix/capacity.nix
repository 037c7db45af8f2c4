# Connection and descriptor limits, all derived from the contract's `connections` section
# (one number, websockets_per_gateway, sizes everything). The same formula is written in
# Python (services/chatstack/capacity.py, for the services' default and the local stack);
# tests/repo/test_capacity.py evaluates both and fails when they disagree, so change them
# together. Pure Nix, no nixpkgs: `import ./capacity.nix contract.connections`.
connections:
let
  number =
    key: least:
    let
      value = connections.${key} or null;
    in
    if builtins.isInt value && value >= least then
      value
    else
      throw "contract connections.${key} = ${builtins.toJSON value}: expected an integer >= ${toString least}";

  websocketsPerGateway = number "websockets_per_gateway" 1;
  httpHeadroom = number "http_headroom" 0;
  fdReserve = number "fd_reserve" 0;
in
{
  # Connections one service process holds (the default `http.max_connections`): a gateway's
  # websockets plus the other connections beside them.
  max_connections = websocketsPerGateway + httpHeadroom;

  # File descriptors (systemd LimitNOFILE) of a service whose connection cap is `cap`: one
  # per connection plus the reserve (broker, logs, SQLite, listeners).
  service_nofile = cap: cap + fdReserve;

  # One nginx (one worker process) in front of `gateways` gateways: every websocket holds two
  # nginx connections (client and gateway side), so do proxied API requests.
  proxy =
    gateways:
    if !(builtins.isInt gateways) || gateways < 1 then
      throw "a load balancer needs at least one gateway, got ${builtins.toJSON gateways}"
    else
      let
        websockets = gateways * websocketsPerGateway;
        workerConnections = 2 * (websockets + httpHeadroom);
      in
      {
        inherit websockets;
        worker_connections = workerConnections;
        # Also the nginx unit's LimitNOFILE.
        worker_rlimit_nofile = workerConnections + fdReserve;
      };
}
