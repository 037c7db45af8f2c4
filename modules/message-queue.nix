{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.chatstack.messageQueue;
  rabbitmq = config.services.rabbitmq;
  chatLib = import ./lib.nix { inherit lib; };
  inherit (chatLib) contract;

  # The contract's permission templates with the regex-escaped names filled in.
  permissionNames = {
    "{exchange}" = lib.escapeRegex contract.amqp.exchange;
    "{history_queue}" = lib.escapeRegex contract.amqp.history_queue;
    "{dead_letter_exchange}" = lib.escapeRegex contract.amqp.dead_letter_exchange;
    "{dead_letter_queue}" = lib.escapeRegex contract.amqp.dead_letter_queue;
    "{server_named}" = lib.escapeRegex contract.amqp.server_named_queue_prefix;
  };
  permission = lib.replaceStrings (lib.attrNames permissionNames) (lib.attrValues permissionNames);
  unfilled = template: builtins.match ".*[{][a-z_]+[}].*" (permission template) != null;
  templates = lib.concatMap (user: [
    user.configure
    user.write
    user.read
  ]) (lib.attrValues contract.amqp.users);

  # A path option as a rabbitmq.conf value (a Nix path literal is copied to the store: only
  # public files may be given that way).
  fileValue = file: if file == null then null else "${file}";

  exchange = name: type: {
    inherit name type;
    vhost = contract.amqp.vhost;
    durable = true;
    auto_delete = false;
    internal = false;
    arguments = { };
  };
  queue = name: {
    inherit name;
    vhost = contract.amqp.vhost;
    durable = true;
    auto_delete = false;
    arguments."x-queue-type" = contract.amqp.history_queue_type;
  };
  binding = source: destination: routingKey: {
    inherit source destination;
    vhost = contract.amqp.vhost;
    destination_type = "queue";
    routing_key = routingKey;
    arguments = { };
  };

  # Exchanges, the durable history and dead-letter queues, bindings and the history policy:
  # no secret, so a store file is fine. Users and permissions need the password files and
  # are set by the provisioning script instead. Same document as the local stack's
  # (services/chatstack/devstack/definitions.py).
  definitions = pkgs.writeText "chatstack-rabbitmq-definitions.json" (
    builtins.toJSON {
      vhosts = [ { name = contract.amqp.vhost; } ];
      exchanges = [
        (exchange contract.amqp.exchange contract.amqp.exchange_type)
        (exchange contract.amqp.dead_letter_exchange contract.amqp.dead_letter_exchange_type)
      ];
      queues = [
        (queue contract.amqp.history_queue)
        (queue contract.amqp.dead_letter_queue)
      ];
      bindings = [
        (binding contract.amqp.exchange contract.amqp.history_queue contract.amqp.history_binding_key)
        (binding contract.amqp.dead_letter_exchange contract.amqp.dead_letter_queue "")
      ];
      # A policy, not queue arguments: it also applies to a history queue declared before it
      # (arguments of a durable queue cannot change on redeclare), and import_definitions on
      # every start updates it. at-least-once dead-lettering needs overflow reject-publish
      # (https://www.rabbitmq.com/docs/quorum-queues#dead-lettering).
      policies = [
        {
          name = contract.amqp.history_policy;
          vhost = contract.amqp.vhost;
          pattern = "^${lib.escapeRegex contract.amqp.history_queue}$";
          "apply-to" = "queues";
          priority = 0;
          definition = {
            "dead-letter-exchange" = contract.amqp.dead_letter_exchange;
            "dead-letter-strategy" = "at-least-once";
            overflow = "reject-publish";
            "delivery-limit" = contract.amqp.history_delivery_limit;
          };
        }
      ];
    }
  );

  ensureUser =
    role: user:
    "ensure_user "
    + lib.escapeShellArgs [
      user.name
      "${role}-password"
      (permission user.configure)
      (permission user.write)
      (permission user.read)
    ];

  # The node is rabbit@<host name>, and rabbitmqctl reaches epmd and the node at the address
  # that name resolves to. NixOS's /etc/hosts maps the host name to 127.0.0.2
  # (networking.hosts, nixos/modules/config/networking.nix); the first IPv4 entry is the one
  # resolution returns, and the distribution is IPv4 (inet_tcp).
  nodeAddresses = lib.filter (
    address:
    chatLib.isIPv4Address address
    && lib.elem config.networking.hostName config.networking.hosts.${address}
  ) (lib.attrNames config.networking.hosts);
  nodeAddress = lib.head (nodeAddresses ++ [ null ]);
  nodeAddressIsLoopback = nodeAddress != null && lib.hasPrefix "127." nodeAddress;
  erlangAddress = address: "{${lib.replaceStrings [ "." ] [ "," ] address}}";
  # Erlang's port mapper, standard port (services.epmd.listenStream's default).
  epmdPort = 4369;

  # Idempotent: every run converges the broker to the contract, whatever state it is in.
  # Passwords go through stdin, never the command line (rabbitmqctl reads them from there).
  setupScript = ''
    set -euo pipefail
    rabbitmqctl await_startup --timeout ${toString chatLib.rabbitmqStartupTimeout}

    # Lists are read whole before grep looks at them (no early exit into a pipe).
    vhost=${lib.escapeShellArg contract.amqp.vhost}
    vhosts=$(rabbitmqctl --silent list_vhosts name)
    if ! grep -qxF "$vhost" <<< "$vhosts"; then
      rabbitmqctl add_vhost "$vhost"
    fi
    # Asynchronous in RabbitMQ; the permissions below only need the vhost created above.
    rabbitmqctl import_definitions ${definitions}

    users=$(rabbitmqctl --silent list_users | cut -f1)
    has_user() { grep -qxF "$1" <<< "$users"; }

    # ensure_user NAME CREDENTIAL CONFIGURE WRITE READ
    ensure_user() {
      local password
      password=$(< "$CREDENTIALS_DIRECTORY/$2")
      if has_user "$1"; then
        printf '%s' "$password" | rabbitmqctl change_password "$1"
      else
        printf '%s' "$password" | rabbitmqctl add_user "$1"
      fi
      rabbitmqctl set_user_tags "$1"
      rabbitmqctl set_permissions -p "$vhost" "$1" "$3" "$4" "$5"
    }

    ${lib.concatStringsSep "\n" (lib.mapAttrsToList ensureUser contract.amqp.users)}

    # No default account (RabbitMQ creates guest on a fresh node).
    if has_user guest; then
      rabbitmqctl delete_user guest
    fi
  '';
in
{
  options.services.chatstack.messageQueue = {
    enable = lib.mkEnableOption "the chatstack message queue (RabbitMQ, AMQPS only, provisioned from the contract)";

    listenAddress = lib.mkOption {
      type = lib.types.nullOr chatLib.ipAddress;
      default = null;
      example = "10.0.0.20";
      description = ''
        Address of the AMQPS listener (the contract's `ports.amqps`); `null` listens on every
        interface. There is no plain AMQP listener.
      '';
    };

    tls = {
      certificateFile = lib.mkOption {
        type = lib.types.nullOr lib.types.path;
        default = null;
        example = "/run/agenix/rabbitmq-tls-cert";
        description = "Broker certificate (chain), readable by the `rabbitmq` user.";
      };

      keyFile = lib.mkOption {
        type = lib.types.nullOr lib.types.externalPath;
        default = null;
        example = "/run/agenix/rabbitmq-tls-key";
        description = "Private key of the broker certificate, readable by the `rabbitmq` user; must be outside the Nix store.";
      };

      caFile = lib.mkOption {
        type = lib.types.nullOr lib.types.path;
        default = null;
        example = "/run/agenix/amqp-ca-cert";
        description = "CA certificate that verifies client certificates, readable by the `rabbitmq` user.";
      };

      requireClientCertificates = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Refuse TLS clients without a certificate signed by {option}`tls.caFile` (mutual TLS).";
      };
    };

    passwordFiles = lib.mapAttrs (
      role: user:
      lib.mkOption {
        type = lib.types.nullOr lib.types.externalPath;
        default = null;
        example = "/run/agenix/amqp-${role}-password";
        description = ''
          File holding the password of the RabbitMQ user `${user.name}` (a trailing newline is
          ignored); must be outside the Nix store. The same file the ${role} service reads.
        '';
      }
    ) contract.amqp.users;

    erlangCookieFile = lib.mkOption {
      type = lib.types.nullOr lib.types.externalPath;
      default = null;
      example = "/run/agenix/rabbitmq-erlang-cookie";
      description = ''
        File holding the Erlang cookie, installed into RabbitMQ's data directory at every
        start (the nodes of a cluster and the CLI must share it). `null` lets RabbitMQ
        generate one on first start, which is fine for a single node. Must be outside the Nix
        store.
      '';
    };
  }
  // chatLib.firewallOptions "the application hosts";

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion =
          cfg.tls.certificateFile != null && cfg.tls.keyFile != null && cfg.tls.caFile != null;
        message = "services.chatstack.messageQueue: tls.certificateFile, tls.keyFile and tls.caFile must be set (the broker is AMQPS only).";
      }
      {
        assertion = lib.all (file: file != null) (lib.attrValues cfg.passwordFiles);
        message = "services.chatstack.messageQueue: every passwordFiles.<role> must be set (${lib.concatStringsSep ", " (lib.attrNames contract.amqp.users)}).";
      }
      {
        assertion = nodeAddressIsLoopback;
        message = "services.chatstack.messageQueue: epmd and the Erlang distribution listen on loopback only, so networking.hosts must map this host's name (${config.networking.hostName}) to a 127.x.x.x address first, as NixOS does by default (127.0.0.2); found ${
          if nodeAddress == null then "none" else nodeAddress
        }.";
      }
      {
        assertion = !lib.any unfilled templates;
        message = "contract: an amqp.users permission template has a placeholder other than ${lib.concatStringsSep ", " (lib.attrNames permissionNames)}.";
      }
    ];

    services.rabbitmq = {
      enable = true;
      # The management API on 127.0.0.1 (it follows listenAddress) for Netdata's collector.
      # The plain AMQP listener the module defines there (listeners.tcp.1) is switched off
      # below.
      listenAddress = "127.0.0.1";
      managementPlugin = {
        enable = true;
        port = contract.ports.rabbitmq_management;
      };
      # https://www.rabbitmq.com/docs/ssl; values are paths, never secrets (this file is in
      # the Nix store).
      configItems = lib.filterAttrs (_: value: value != null) {
        # No plain AMQP listener: rabbit.schema translates `listeners.tcp = none` to no TCP
        # listener whatever `listeners.tcp.<name>` says (the module always sets
        # listeners.tcp.1); checked with a real broker with both keys, in either order.
        "listeners.tcp" = "none";
        "ssl_options.cacertfile" = fileValue cfg.tls.caFile;
        "ssl_options.certfile" = fileValue cfg.tls.certificateFile;
        "ssl_options.keyfile" = cfg.tls.keyFile;
        "ssl_options.verify" = "verify_peer";
        "ssl_options.fail_if_no_peer_cert" = lib.boolToString cfg.tls.requireClientCertificates;
        "ssl_options.versions.1" = "tlsv1.3";
        "ssl_options.versions.2" = "tlsv1.2";
      }
      // (
        if cfg.listenAddress == null then
          { "listeners.ssl.default" = toString contract.ports.amqps; }
        else
          { "listeners.ssl.1" = chatLib.hostPort cfg.listenAddress contract.ports.amqps; }
      )
      # The node's own settings, the same the local stack writes: the quorum queues' WAL size,
      # which bounds their memory (modules/README.md, "RabbitMQ memory").
      // lib.mapAttrs (_: value: toString value) contract.rabbitmq_conf;
    };

    # A single node: epmd and the Erlang distribution answer on loopback only, at 127.0.0.1
    # (where a node registers with epmd) and at the node's own address (where the CLI looks
    # for it). epmd takes every socket systemd passes it (epmd_srv.c, is_systemd).
    services.epmd.listenStream = "127.0.0.1:${toString epmdPort}";
    systemd.sockets.epmd.listenStreams = lib.optional (
      nodeAddressIsLoopback && nodeAddress != "127.0.0.1"
    ) "${nodeAddress}:${toString epmdPort}";

    systemd.services.rabbitmq = lib.mkMerge [
      {
        # Read by the rabbitmq-server and rabbitmqctl scripts (rabbitmq-env); the unit's
        # ExecStop runs rabbitmqctl, whose own distribution listener stays on loopback too.
        environment = {
          RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS = "-kernel inet_dist_use_interface ${
            erlangAddress (if nodeAddressIsLoopback then nodeAddress else "127.0.0.1")
          }";
          RABBITMQ_CTL_ERL_ARGS = chatLib.rabbitmqctlErlArgs;
        };
      }
      (lib.mkIf (cfg.erlangCookieFile != null) {
        # The unit runs as rabbitmq and reads the cookie from its credentials, so the secret
        # file may stay root-only. https://www.rabbitmq.com/docs/cli#erlang-cookie
        serviceConfig.LoadCredential = [ "erlang-cookie:${cfg.erlangCookieFile}" ];
        preStart = lib.mkBefore ''
          rm -f ${rabbitmq.dataDir}/.erlang.cookie
          (umask 0377; tr -d '\n' < "$CREDENTIALS_DIRECTORY/erlang-cookie" > ${rabbitmq.dataDir}/.erlang.cookie)
        '';
        restartTriggers = [ cfg.erlangCookieFile ];
      })
    ];

    # Vhost, users with the contract's least-privilege permissions, topology; no guest.
    systemd.services.chatstack-rabbitmq-setup = {
      description = "chatstack: RabbitMQ vhost, users, permissions and history queue";
      wantedBy = [ "multi-user.target" ];
      requires = [ "rabbitmq.service" ];
      after = [ "rabbitmq.service" ];
      restartTriggers = lib.attrValues cfg.passwordFiles;
      path = [
        rabbitmq.package
        pkgs.gnugrep
        pkgs.coreutils
      ];
      environment = {
        # rabbitmqctl authenticates to the node with $HOME/.erlang.cookie.
        HOME = rabbitmq.dataDir;
        RABBITMQ_CTL_ERL_ARGS = chatLib.rabbitmqctlErlArgs;
      };
      script = setupScript;
      serviceConfig = chatLib.erlangHardening // {
        Type = "oneshot";
        RemainAfterExit = true;
        TimeoutStartSec = chatLib.rabbitmqProvisioningTimeout;
        User = "rabbitmq";
        Group = "rabbitmq";
        LoadCredential = lib.mapAttrsToList (
          role: file: "${role}-password:${file}"
        ) cfg.passwordFiles;
      };
    };

    networking.firewall = lib.mkIf cfg.openFirewall (
      chatLib.allowTcpFrom {
        inherit config;
        ports = [ contract.ports.amqps ];
        sources = cfg.allowedSources;
      }
    );
  };
}
