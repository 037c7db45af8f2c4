# apps.<system>: `nix run .#gateway`, `.#history`, `.#serve` (the embedded single-process
# default, also `nix run`), `.#probe` and `.#fleet-secrets`. Arguments after `--` are passed on.
inputs:
let
  common = import ./lib.nix inputs;
  inherit (inputs.nixpkgs) lib;
in
common.forAllSystems (
  system:
  let
    pkgs = common.pkgsFor.${system};
    inherit (inputs.self.packages.${system}) chatstack fleet-secrets;

    app = description: program: {
      type = "app";
      inherit program;
      meta = { inherit description; };
    };

    # `chatstack serve`: gateway + history + in-memory broker + client on one port.
    serveScript = pkgs.writeShellScript "chatstack-serve" ''
      exec ${lib.getExe' chatstack "chatstack"} serve "$@"
    '';
  in
  rec {
    gateway = app "chatstack websocket gateway" (lib.getExe' chatstack "chat-gateway");
    history = app "chatstack history service" (lib.getExe' chatstack "chat-history");
    serve = app "chatstack embedded default (one process, no RabbitMQ)" "${serveScript}";
    probe = app "chatstack end-to-end probe" (lib.getExe' chatstack "chat-probe");
    fleet-secrets = app "make, rotate and re-encrypt the fleet's agenix secrets" (
      lib.getExe fleet-secrets
    );
    default = serve;
  }
)
