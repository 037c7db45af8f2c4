# The order the deploy hook (hydra/deploy-hook) activates the fleet in, as data carried by the
# `release` job: `deploy_order` of fleet.toml names the roles in order (message queue first, so
# the gateways find the broker they expect; the load balancer last, so its upstreams exist), and
# every host of a role is its own step, by name, so app hosts go one at a time. Hosts whose role
# is not in `deploy_order` (the CI host) are deployed by an operator, not by the pipeline.
#
# Plain builtins only, so the hook's tests evaluate the same file with nix-instantiate.
{
  fleet,
  # The commit the flake was evaluated at (`self.rev`); null for a dirty tree.
  revision,
  # Its commit time (`self.lastModified`, seconds since the epoch).
  lastModified,
}:
let
  hostsWithRole =
    role:
    builtins.filter (name: fleet.hosts.${name}.role == role) (builtins.attrNames fleet.hosts);
in
{
  inherit revision lastModified;
  steps = builtins.concatMap (
    role:
    map (node: { inherit node role; }) (hostsWithRole role)
  ) fleet.deploy_order;
}
