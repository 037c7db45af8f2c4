{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.chatstack.gateway;
  chatLib = import ./lib.nix { inherit lib; };
  inherit (chatLib) contract;
  settingsFormat = pkgs.formats.toml { };
  credentials = chatLib.amqpCredentials cfg;

  # What one instance's TOML file holds: the shared settings, then its own.
  instanceSettings = instance: lib.recursiveUpdate cfg.settings instance.settings;

  instancePorts = lib.mapAttrsToList (_: instance: instance.settings.http.port) cfg.instances;

  instanceModule =
    { name, ... }:
    {
      options.settings = lib.mkOption {
        type = lib.types.submodule {
          freeformType = settingsFormat.type;
          options = {
            instance = lib.mkOption {
              type = lib.types.str;
              default = "${config.networking.hostName}-gw-${name}";
              defaultText = lib.literalExpression ''"''${config.networking.hostName}-gw-<name>"'';
              description = "Name of this instance in logs, metrics and the `welcome` frame.";
            };
            http.port = lib.mkOption {
              type = lib.types.port;
              description = ''
                Port this instance listens on. Instances named `1`, `2`, ... default to the
                contract's `ports.gateway + N - 1`; others must set it.
              '';
            };
          };
        };
        default = { };
        description = ''
          Settings of this instance only, merged over
          {option}`services.chatstack.gateway.settings`.
        '';
      };

      # Instance N listens on ports.gateway + N - 1 (the contract's rule for gateway ports).
      config.settings.http.port = lib.mkIf (builtins.match "[1-9][0-9]*" name != null) (
        lib.mkDefault (contract.ports.gateway + lib.toInt name - 1)
      );
    };
in
{
  options.services.chatstack.gateway = {
    enable = lib.mkEnableOption "the chatstack websocket gateway (chat-gateway)";

    package = lib.mkPackageOption pkgs "chatstack" { };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options.http.shutdown_timeout_s = lib.mkOption {
          type = lib.types.numbers.positive;
          default = 10;
          description = ''
            Time a gateway has after SIGTERM to tell its clients to reconnect and exit; the
            units' stop timeout is derived from it.
          '';
        };
        options.http.max_connections = chatLib.maxConnectionsOption;
        options.http.xheaders = lib.mkOption {
          type = lib.types.bool;
          default = true;
          description = ''
            Take the client address from nginx's `X-Real-IP` (the gateways sit behind the load
            balancer; `gateway.max_connections_per_address` counts per client address). Keep
            the gateway ports closed to everyone but the load balancers (`allowedSources`).
          '';
        };
      };
      default = { };
      example = lib.literalExpression ''
        {
          http = {
            host = "10.0.0.11";
            xheaders = true;
          };
          gateway.allowed_origins = [ "https://chat.example.com" ];
          broker.host = "10.0.0.20";
          statsd.host = "127.0.0.1";
        }
      '';
      description = ''
        Configuration shared by every instance, rendered to the TOML file chat-gateway reads
        (keys in docs/configuration.md; unknown keys stop the service). It lands in the
        world-readable Nix store: never put a secret here, use the `*File` options. The module
        sets `broker.password_file`, `broker.ca_file` and, when given, `broker.cert_file` and
        `broker.key_file` to the credentials it loads.
      '';
    };

    instances = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule instanceModule);
      default = {
        "1" = { };
      };
      example = lib.literalExpression ''
        {
          "1" = { };
          "2" = { };
        }
      '';
      description = ''
        Gateway processes on this host, one unit `chat-gateway-<name>.service` each. An
        instance named `N` listens on the contract's `ports.gateway + N - 1` unless its
        `settings.http.port` says otherwise.
      '';
    };
  }
  // chatLib.amqpFileOptions "gateway"
  // chatLib.firewallOptions "the load balancers";

  config = lib.mkIf cfg.enable {
    assertions = chatLib.amqpFileAssertions "services.chatstack.gateway" cfg ++ [
      {
        assertion = cfg.instances != { };
        message = "services.chatstack.gateway: at least one instance is needed.";
      }
      {
        assertion = !(cfg.settings.http ? port);
        message = "services.chatstack.gateway: set the port per instance (instances.<name>.settings.http.port), not in the shared settings.";
      }
      {
        assertion = lib.length instancePorts == lib.length (lib.unique instancePorts);
        message = "services.chatstack.gateway: two instances listen on the same port.";
      }
    ];

    services.chatstack.gateway.settings.broker = chatLib.amqpFileSettings cfg;

    systemd.services = lib.mapAttrs' (
      name: instance:
      let
        settings = instanceSettings instance;
        unit = "chat-gateway-${name}";
      in
      lib.nameValuePair unit (
        chatLib.pythonService {
          name = unit;
          description = "chatstack websocket gateway ${name}";
          program = lib.getExe' cfg.package "chat-gateway";
          configFile = settingsFormat.generate "${unit}.toml" settings;
          inherit credentials;
          shutdownTimeout = settings.http.shutdown_timeout_s;
          maxConnections = settings.http.max_connections;
        }
      )
    ) cfg.instances;

    networking.firewall = lib.mkIf cfg.openFirewall (
      chatLib.allowTcpFrom {
        inherit config;
        ports = instancePorts;
        sources = cfg.allowedSources;
      }
    );
  };
}
