{
  description = "chatstack: real-time chat (websocket gateway + history on RabbitMQ), its NixOS modules and fleet";

  # The inputs must stay byte-for-byte what flake.lock was built for (owner spelling, refs,
  # follows), or Nix re-locks, which needs the network (tests/repo/test_nix_parse.py checks
  # both). Every input follows our one nixpkgs; transitive inputs nothing here uses are
  # dropped with `follows = ""`.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

    agenix = {
      url = "github:ryantm/agenix";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.darwin.follows = ""; # only agenix's darwin checks use it
      inputs.home-manager.follows = ""; # only agenix's checks use it
    };

    deploy-rs = {
      url = "github:serokell/deploy-rs";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.flake-compat.follows = ""; # only deploy-rs's default.nix and its own tests use it
    };

    poetry2nix = {
      url = "github:nix-community/poetry2nix";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.flake-utils.follows = "deploy-rs/utils"; # its outputs are built with flake-utils
      inputs.systems.follows = "agenix/systems";
      inputs.nix-github-actions.follows = ""; # only poetry2nix.githubActions uses it
      inputs.treefmt-nix.follows = ""; # only poetry2nix's formatter and checks use it
    };
  };

  # A short index: every output is built by one file under nix/ (shared helpers: nix/lib.nix).
  outputs = inputs: {
    packages = import ./nix/packages.nix inputs;
    apps = import ./nix/apps.nix inputs;
    devShells = import ./nix/devshell.nix inputs;
    overlays.default = import ./nix/overlay.nix inputs;
    formatter = import ./nix/formatter.nix inputs;
    nixosModules = import ./nix/modules.nix inputs;
    nixosConfigurations = import ./nix/nixos-configurations.nix inputs;
    deploy = import ./nix/deploy.nix inputs;
    checks = import ./nix/checks.nix inputs;
    hydraJobs = import ./nix/hydra-jobs.nix inputs;
  };
}
