{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.chatstack.history;
  chatLib = import ./lib.nix { inherit lib; };
  inherit (chatLib) contract;
  settingsFormat = pkgs.formats.toml { };
in
{
  options.services.chatstack.history = {
    enable = lib.mkEnableOption "the chatstack message history service (chat-history)";

    package = lib.mkPackageOption pkgs "chatstack" { };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options.http = {
          port = lib.mkOption {
            type = lib.types.port;
            default = contract.ports.history;
            defaultText = lib.literalMD "`ports.history` of the contract";
            description = "Port the history API listens on.";
          };
          max_connections = chatLib.maxConnectionsOption;
          shutdown_timeout_s = lib.mkOption {
            type = lib.types.numbers.positive;
            default = 10;
            description = ''
              Time chat-history has after SIGTERM to finish; the unit's stop timeout is
              derived from it.
            '';
          };
        };
      };
      default = { };
      example = lib.literalExpression ''
        {
          http = {
            host = "10.0.0.20";
            xheaders = true;
          };
          broker.host = "10.0.0.20";
          statsd.host = "127.0.0.1";
        }
      '';
      description = ''
        Configuration rendered to the TOML file chat-history reads (keys in
        docs/configuration.md; unknown keys stop the service). It lands in the world-readable
        Nix store: never put a secret here, use the `*File` options. The module sets
        `broker.password_file`, `broker.ca_file` and, when given, `broker.cert_file` and
        `broker.key_file` to the credentials it loads. A relative `history.database` (the
        default `history.sqlite3`) lives in the unit's state directory
        `/var/lib/chat-history`.
      '';
    };
  }
  // chatLib.amqpFileOptions "history"
  // chatLib.firewallOptions "the load balancers";

  config = lib.mkIf cfg.enable {
    assertions = chatLib.amqpFileAssertions "services.chatstack.history" cfg;

    services.chatstack.history.settings.broker = chatLib.amqpFileSettings cfg;

    systemd.services.chat-history = lib.mkMerge [
      (chatLib.pythonService {
        name = "chat-history";
        description = "chatstack message history";
        program = lib.getExe' cfg.package "chat-history";
        configFile = settingsFormat.generate "chat-history.toml" cfg.settings;
        credentials = chatLib.amqpCredentials cfg;
        shutdownTimeout = cfg.settings.http.shutdown_timeout_s;
        maxConnections = cfg.settings.http.max_connections;
      })
      {
        # The SQLite database (WAL); systemd sets $STATE_DIRECTORY for relative paths.
        serviceConfig.StateDirectory = "chat-history";
        serviceConfig.StateDirectoryMode = "0700";
        # A damaged or missing database (and a bad config) exits with these codes: a restart
        # cannot fix them and would only bury the one log line that says what is wrong.
        # https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#RestartPreventExitStatus=
        serviceConfig.RestartPreventExitStatus = lib.concatMapStringsSep " " toString [
          contract.exit_codes.store_unusable
          contract.exit_codes.config_error
        ];
      }
    ];

    networking.firewall = lib.mkIf cfg.openFirewall (
      chatLib.allowTcpFrom {
        inherit config;
        ports = [ cfg.settings.http.port ];
        sources = cfg.allowedSources;
      }
    );
  };
}
