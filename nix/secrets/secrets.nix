# agenix rules file (the CLI reads it: `cd nix/secrets && agenix -e <name>.age`, `agenix -r`):
# "<name>.age".publicKeys for every secret in ../fleet.toml [secrets.*]. The recipients are every
# admin key, then the SSH host key of every host whose role is in the secret's `roles`, in the
# order tools/fleet-secrets uses. Plain builtins only, so the agenix CLI (nix-instantiate --eval)
# needs no nixpkgs.
let
  fleet = builtins.fromTOML (builtins.readFile ../fleet.toml);

  admins = builtins.attrValues fleet.admins;

  hostKeysFor =
    roles:
    map (name: fleet.hosts.${name}.host_key) (
      builtins.filter (name: builtins.elem fleet.hosts.${name}.role roles) (
        builtins.attrNames fleet.hosts
      )
    );
in
builtins.listToAttrs (
  map (name: {
    name = "${name}.age";
    value.publicKeys = admins ++ hostKeysFor fleet.secrets.${name}.roles;
  }) (builtins.attrNames fleet.secrets)
)
