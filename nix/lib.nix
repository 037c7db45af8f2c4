# Helpers shared by the files under nix/ that build the flake outputs. Takes the flake
# inputs (self included), returns plain values; no output is defined here.
{ self, nixpkgs, ... }:
let
  inherit (nixpkgs) lib;
in
rec {
  # Systems the packages, apps, dev shells and formatter are built for.
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # Every host of the fleet runs this system (nixosConfigurations, deploy.nodes, host-* checks).
  hostSystem = "x86_64-linux";

  forAllSystems = lib.genAttrs systems;

  # { <system> = f pkgs; } with that system's pkgsFor: the outputs that need nothing else.
  forAllPkgs = f: lib.mapAttrs (_system: f) pkgsFor;

  # nixpkgs with our overlay (pkgs.chatstack, pkgs.chat-client-demo), one instance per system.
  pkgsFor = lib.genAttrs systems (
    system:
    import nixpkgs {
      inherit system;
      overlays = [ self.overlays.default ];
    }
  );

  # The host table: name -> role/address/host_key, admins, secrets (nix/fleet.toml).
  fleet = lib.importTOML ./fleet.toml;

  # deploy-rs' activationTimeout for a host, from its NixOS configuration. deploy-rs rolls the
  # host back when the activation (switch-to-configuration, which waits for every unit it
  # starts) takes longer, 240 s by default. systemd gives each unit its TimeoutStartSec and
  # then fails it, which fails the switch: the sum over the units the chatstack modules run
  # or configure (some wait for others: rabbitmq, then its provisioning, then chat-history)
  # plus a minute for the rest of the switch is a bound the activation cannot reach while
  # systemd is still waiting. Never below deploy-rs' own default.
  activationTimeout =
    config:
    let
      ours =
        name:
        lib.hasPrefix "chat" name
        || lib.elem name [
          "rabbitmq"
          "nginx"
          "netdata"
        ];
      units = lib.filterAttrs (name: _: ours name) config.systemd.services;
      startSeconds =
        name: unit:
        let
          timeout = unit.serviceConfig.TimeoutStartSec or null;
          parsed = builtins.match "([0-9]+) *(s|sec|min)?" (toString timeout);
          number = lib.toInt (lib.head parsed);
        in
        if timeout == null then
          if (unit.serviceConfig.Type or "simple") == "oneshot" then
            throw "systemd.services.${name}: a oneshot unit without TimeoutStartSec may hold a deployment forever (systemd sets no start timeout for oneshot units)"
          else
            90 # systemd's DefaultTimeoutStartSec
        else if parsed == null then
          throw "systemd.services.${name}: TimeoutStartSec = ${toString timeout} is not a number of seconds or minutes (nix/lib.nix activationTimeout)"
        else if lib.elemAt parsed 1 == "min" then
          number * 60
        else
          number;
    in
    lib.max 240 (60 + lib.foldl' (sum: time: sum + time) 0 (lib.mapAttrsToList startSeconds units));
}
