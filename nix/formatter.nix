# formatter.<system>: `nix fmt` formats every .nix file with nixfmt (RFC 166 style) through
# treefmt. nixfmt-rfc-style is the deprecated name of the same formatter.
inputs:
let
  common = import ./lib.nix inputs;
in
common.forAllPkgs (pkgs: pkgs.nixfmt-tree)
