# devShells.<system>.default: Python with the locked main and test dependencies (the code in
# ./services runs from the working tree), Poetry, the programs the integration tests and the
# local stack start (RabbitMQ, nginx, openssl), and the fleet tools (age, agenix, deploy-rs).
inputs:
let
  common = import ./lib.nix inputs;
in
common.forAllPkgs (pkgs: {
  default = pkgs.mkShell {
    packages = [
      pkgs.chatstack.devEnv
      # The lock was written by Poetry 1.8 (lock-version 2.0); see docs/deploying.md before
      # re-locking with this Poetry.
      pkgs.poetry
      # Linters from nixpkgs: the dev group of the lock is not built with poetry2nix
      # (docs/deploying.md, "poetry2nix"). `make lint` uses the locked versions.
      pkgs.ruff
      pkgs.mypy
      pkgs.rabbitmq-server
      pkgs.nginx
      pkgs.openssl
      pkgs.age
      inputs.agenix.packages.${pkgs.stdenv.hostPlatform.system}.agenix
      # nixpkgs' build of deploy-rs (from the binary cache), the same one deploy.nix activates.
      pkgs.deploy-rs
      pkgs.nixfmt-tree
    ];
    shellHook = ''
      export PYTHONPATH="$PWD/services''${PYTHONPATH:+:$PYTHONPATH}"
    '';
  };
})
