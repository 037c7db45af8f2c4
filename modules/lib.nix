# Helpers shared by the chatstack NixOS modules. Not a module: each module imports it with
# `import ./lib.nix { inherit lib; }`, so every module file also works on its own.
{ lib }:
let
  contract = import ../nix/contract.nix;
  # Connection caps and descriptor limits derived from contract.connections (one formula,
  # shared with the Python side: nix/capacity.nix).
  capacity = import ../nix/capacity.nix contract.connections;

  isIPv6 = address: lib.hasInfix ":" address;

  # Dotted quad, each part 0-255 without leading zeros (which some parsers read as octal).
  ipv4Octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  isIPv4Address = address: builtins.match "${ipv4Octet}([.]${ipv4Octet}){3}" address != null;
  # lib.network.ipv6.fromString throws on anything but an RFC 4291 address; it also takes a
  # "/prefix", which an address must not have. Not accepted: the "::ffff:1.2.3.4" form (the
  # parser lacks it) and zone ids ("%eth0").
  isIPv6Address =
    address:
    lib.isString address
    && !lib.hasInfix "/" address
    && (builtins.tryEval (builtins.deepSeq (lib.network.ipv6.fromString address) true)).success;
  isIPAddress = address: lib.isString address && (isIPv4Address address || isIPv6Address address);
in
rec {
  inherit contract capacity;

  # One set of sandboxing keys for every chatstack unit (systemd.exec(5)). Units add only what
  # is theirs on top (DynamicUser, StateDirectory, LoadCredential, MemoryDenyWriteExecute for
  # the Python services); the units that run rabbitmqctl use `erlangHardening` below.
  hardening = {
    AmbientCapabilities = "";
    CapabilityBoundingSet = "";
    DevicePolicy = "closed";
    LockPersonality = true;
    NoNewPrivileges = true;
    PrivateDevices = true;
    PrivateMounts = true;
    PrivateTmp = true;
    PrivateUsers = true;
    ProcSubset = "pid";
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHome = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectProc = "invisible";
    ProtectSystem = "strict";
    RemoveIPC = true;
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    SystemCallArchitectures = "native";
    SystemCallErrorNumber = "EPERM";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
    ];
    UMask = "0077";
  };

  # The sandbox of a unit that runs RabbitMQ's CLI (rabbitmqctl: an Erlang VM, as the
  # `rabbitmq` user). Measured with strace on rabbitmqctl (RabbitMQ 3.10, OTP 25 with the JIT)
  # doing await_startup, list_users, add_user, import_definitions, set_permissions and
  # delete_user: every syscall is in @system-service and none in @privileged; sockets are
  # AF_INET (epmd, the node) and AF_UNIX (nscd, from inet_gethost); it ran unchanged in a user
  # namespace mapping only its own uid, the cookie being the user's (PrivateUsers). So the
  # shared set holds, except:
  erlangHardening = hardening // {
    # The VM sizes itself from /proc/sys/vm/overcommit_memory and /proc/self/mountinfo (cgroup
    # limits); "pid" hides /proc/sys.
    ProcSubset = "all";
    # The JIT maps its code twice (memfd_create "vmem", one writable and one executable view):
    # systemd.exec(5) names JITs as incompatible with W^X.
    MemoryDenyWriteExecute = false;
  };

  # rabbitmqctl starts an Erlang node of its own, whose distribution listener would take every
  # interface: loopback is enough, it only connects out to the broker (RabbitMQ's rabbitmq-env
  # passes this to `erl`).
  rabbitmqctlErlArgs = "-kernel inet_dist_use_interface {127,0,0,1}";

  # How long a unit that provisions RabbitMQ with rabbitmqctl waits for the broker to boot
  # (`rabbitmqctl await_startup --timeout`), and the start timeout that gives it: the wait plus
  # two minutes for its commands (each boots an Erlang VM, seconds on a busy host). systemd
  # sets no start timeout for a oneshot unit unless told; nix/lib.nix derives deploy-rs'
  # activationTimeout from these.
  rabbitmqStartupTimeout = 300;
  rabbitmqProvisioningTimeout = rabbitmqStartupTimeout + 120;

  # The *File options of a service that talks AMQPS to RabbitMQ (gateway, history).
  amqpFileOptions = service: {
    amqpPasswordFile = lib.mkOption {
      type = lib.types.nullOr lib.types.externalPath;
      default = null;
      example = "/run/agenix/amqp-${service}-password";
      description = ''
        File holding the service's RabbitMQ password (a trailing newline is ignored), read by
        systemd and handed to the service with `LoadCredential`. Must be outside the Nix store.
      '';
    };

    amqpCaFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/run/agenix/amqp-ca-cert";
      description = "CA certificate that signed the broker's certificate (verified, hostname checked).";
    };

    amqpClientCertFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "Client certificate presented to the broker (mutual TLS); needs `amqpClientKeyFile`.";
    };

    amqpClientKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.externalPath;
      default = null;
      description = "Private key of `amqpClientCertFile`; must be outside the Nix store.";
    };
  };

  # Credential id -> file for `LoadCredential`, and the settings naming those ids: the
  # services resolve a relative *_file against $CREDENTIALS_DIRECTORY (docs/configuration.md).
  amqpCredentials =
    cfg:
    lib.filterAttrs (_: file: file != null) {
      amqp-password = cfg.amqpPasswordFile;
      amqp-ca = cfg.amqpCaFile;
      amqp-client-cert = cfg.amqpClientCertFile;
      amqp-client-key = cfg.amqpClientKeyFile;
    };

  amqpFileSettings =
    cfg:
    lib.optionalAttrs (cfg.amqpPasswordFile != null) { password_file = "amqp-password"; }
    // lib.optionalAttrs (cfg.amqpCaFile != null) { ca_file = "amqp-ca"; }
    // lib.optionalAttrs (cfg.amqpClientCertFile != null) { cert_file = "amqp-client-cert"; }
    // lib.optionalAttrs (cfg.amqpClientKeyFile != null) { key_file = "amqp-client-key"; };

  amqpFileAssertions = option: cfg: [
    {
      assertion = cfg.amqpPasswordFile != null && cfg.amqpCaFile != null;
      message = "${option}: amqpPasswordFile and amqpCaFile must be set (the service talks AMQPS to RabbitMQ).";
    }
    {
      assertion = (cfg.amqpClientCertFile == null) == (cfg.amqpClientKeyFile == null);
      message = "${option}: set amqpClientCertFile and amqpClientKeyFile together or not at all.";
    }
  ];

  # `openFirewall` plus the sources it is limited to, for a service listening on a port.
  firewallOptions = clients: {
    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Open the service's port(s) in the firewall: to the addresses in `allowedSources` if
        any, else to everyone.
      '';
    };

    allowedSources = lib.mkOption {
      type = lib.types.listOf ipAddress;
      default = [ ];
      example = [ "10.0.0.10" ];
      description = "Addresses (${clients}) allowed to connect when `openFirewall` is set.";
    };
  };

  # `http.max_connections` of a service's settings: the cap its unit's LimitNOFILE is sized for.
  maxConnectionsOption = lib.mkOption {
    type = lib.types.ints.positive;
    default = capacity.max_connections;
    defaultText = lib.literalMD "`connections.websockets_per_gateway` + `connections.http_headroom` of the contract (${toString capacity.max_connections})";
    description = ''
      Open connections (HTTP and websocket) the service holds; one more is answered 503.
      The unit's `LimitNOFILE` is this plus the contract's `connections.fd_reserve`.
    '';
  };

  # The unit of a chatstack Python service: hardened, credentials loaded, config in the store.
  pythonService =
    {
      name,
      description,
      program,
      configFile,
      credentials,
      shutdownTimeout,
      maxConnections,
    }:
    {
      inherit description;
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # A changed secret *path* restarts the unit; hosts add the age files for new contents.
      restartTriggers = lib.attrValues credentials;
      # JSON log lines reach the journal as they are written, not when a buffer fills.
      environment.PYTHONUNBUFFERED = "1";
      serviceConfig = hardening // {
        # The service sends READY=1 (sd_notify) once it listens and has reached RabbitMQ, so
        # "started" means "serving": deploy-rs moves to the next app host only then.
        Type = "notify";
        ExecStart = "${program} --config ${configFile}";
        DynamicUser = true;
        LoadCredential = lib.mapAttrsToList (id: file: "${id}:${file}") credentials;
        MemoryDenyWriteExecute = true;
        Restart = "on-failure";
        RestartSec = "2s";
        # SIGTERM drains (clients are told to reconnect elsewhere); leave time to finish.
        TimeoutStopSec = "${toString (builtins.ceil shutdownTimeout + 10)}s";
        SyslogIdentifier = name;
        # Room for every connection the service accepts (http.max_connections; beyond it
        # it answers 503) plus the descriptors it needs besides (contract connections).
        LimitNOFILE = capacity.service_nofile maxConnections;
      };
    };

  # "ADDRESS:PORT" of an upstream server, IPv6 in brackets.
  hostPort =
    address: port:
    if isIPv6 address then "[${address}]:${toString port}" else "${address}:${toString port}";

  inherit isIPAddress isIPv4Address;

  # An IP address (v4 or v6), not a host name: nginx resolves names only at start (gixy's
  # stale_dns_cache) and firewall rules need addresses.
  ipAddress = lib.types.addCheck lib.types.str isIPAddress // {
    name = "ipAddress";
    description = "IPv4 or IPv6 address";
  };

  # An "ADDRESS:PORT" upstream server with an IP address, IPv6 in brackets, port 1-65535.
  ipPort =
    lib.types.addCheck lib.types.str (
      value:
      let
        parts = builtins.match "([0-9.]+|[[]([0-9A-Fa-f:]+)[]]):([1-9][0-9]{0,4})" value;
        v4 = lib.elemAt parts 0;
        v6 = lib.elemAt parts 1;
        port = lib.toInt (lib.elemAt parts 2);
      in
      parts != null
      && (if v6 == null then isIPv4Address v4 else isIPv6Address v6)
      && port <= 65535
    )
    // {
      name = "ipPort";
      description = "IP address and port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)";
    };

  # Firewall rules accepting new TCP connections to `ports` from `sources` only, for the
  # nftables backend (networking.firewall.extraInputRules) and the iptables one
  # (networking.firewall.extraCommands: appended to the nixos-fw chain before its final refuse).
  # `sources = [ ]` opens the ports to everyone (networking.firewall.allowedTCPPorts).
  allowTcpFrom =
    {
      config,
      ports,
      sources,
    }:
    let
      v4 = lib.filter (s: !isIPv6 s) sources;
      v6 = lib.filter isIPv6 sources;
      portSet = lib.concatMapStringsSep ", " toString ports;
      nftRule =
        family: addresses:
        lib.optionalString (addresses != [ ]) ''
          ${family} saddr { ${lib.concatStringsSep ", " addresses} } tcp dport { ${portSet} } accept
        '';
      iptRules =
        command: addresses:
        lib.concatMapStrings (
          address:
          lib.concatMapStrings (port: ''
            ${command} -A nixos-fw -p tcp -s ${address} --dport ${toString port} -j nixos-fw-accept
          '') ports
        ) addresses;
      nftables = config.networking.nftables.enable or false;
    in
    if sources == [ ] then
      { allowedTCPPorts = ports; }
    else
      {
        extraInputRules = lib.mkIf nftables (nftRule "ip" v4 + nftRule "ip6" v6);
        extraCommands = lib.mkIf (!nftables) (iptRules "iptables" v4 + iptRules "ip6tables" v6);
      };
}
