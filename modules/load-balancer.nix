{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.chatstack.loadBalancer;
  chatLib = import ./lib.nix { inherit lib; };
  inherit (chatLib) contract;

  # Sized for every gateway behind this balancer at the contract's websockets_per_gateway:
  # worker_connections, worker_rlimit_nofile and the unit's LimitNOFILE (nix/capacity.nix,
  # the formula the local stack's nginx uses too).
  capacity = chatLib.capacity.proxy (builtins.length cfg.gatewayServers);

  upstreamGateways = contract.proxy.upstream_gateways;
  upstreamHistory = contract.proxy.upstream_history;
  websocketTimeout = "${toString contract.proxy.websocket_timeout_s}s";

  # Passive failover: a server that fails max_fails times is skipped for fail_timeout.
  upstreamServers =
    servers:
    lib.genAttrs servers (_: {
      max_fails = contract.proxy.max_fails;
      fail_timeout = "${toString contract.proxy.fail_timeout_s}s";
    });

  # Security headers of the public origin, all at the server level and nowhere else: nginx
  # drops every inherited add_header in a block that has one of its own (gixy's
  # add_header_redefinition), so no location below adds a header.
  headers =
    contract.proxy.headers
    // lib.optionalAttrs (cfg.strictTransportSecurity != null) {
      Strict-Transport-Security = cfg.strictTransportSecurity;
    };
  unquotable = value: builtins.match ''.*["\\$].*|.*[[:cntrl:]].*'' value != null;
  headerConfig = lib.concatStrings (
    lib.mapAttrsToList (name: value: ''
      add_header ${name} "${value}" always;
      proxy_hide_header ${name};
    '') headers
  );

  # A dead gateway is skipped at connect time instead of after the global proxy timeout.
  failoverConfig = ''
    proxy_connect_timeout ${cfg.proxyConnectTimeout};
    proxy_next_upstream error timeout http_502 http_503 http_504;
  '';

  # Websockets per client address (the contract's connections.per_address), in one zone.
  perAddressZone = contract.proxy.per_address_zone;

  # /healthz and /readyz: any ready gateway answers (503 only when none is).
  gatewayCheck = {
    proxyPass = "http://${upstreamGateways}";
    recommendedProxySettings = true;
    extraConfig = failoverConfig;
  };
in
{
  options.services.chatstack.loadBalancer = {
    enable = lib.mkEnableOption "the chatstack load balancer (nginx: client, websocket and history API on one origin)";

    clientPackage = lib.mkPackageOption pkgs "chat-client-demo" { };

    domain = lib.mkOption {
      type = lib.types.str;
      example = "chat.example.com";
      description = "Public name of the chat origin (virtual host and ACME certificate).";
    };

    gatewayServers = lib.mkOption {
      type = lib.types.nonEmptyListOf chatLib.ipPort;
      example = [
        "10.0.0.11:8101"
        "10.0.0.11:8102"
        "10.0.0.12:8101"
      ];
      description = ''
        Every gateway instance, as `ADDRESS:PORT` with an IP address: nginx resolves names
        only when it starts.
      '';
    };

    historyServers = lib.mkOption {
      type = lib.types.nonEmptyListOf chatLib.ipPort;
      example = [ "10.0.0.20:8201" ];
      description = "chat-history servers, as `ADDRESS:PORT` with an IP address.";
    };

    proxyConnectTimeout = lib.mkOption {
      type = lib.types.str;
      default = "3s";
      description = ''
        How long nginx waits for a backend to accept a connection before it tries the next
        one (proxy_connect_timeout of the proxied locations).
      '';
    };

    tls = {
      certificateFile = lib.mkOption {
        type = lib.types.nullOr lib.types.path;
        default = null;
        description = ''
          Certificate (chain) to serve instead of one from ACME, e.g. a test certificate
          (the NixOS VM tests, tests/vm/fleet.nix, serve one for `https://lb`). With the
          default `null` the certificate comes from ACME (`security.acme` must accept the
          terms and have an email).
        '';
      };

      keyFile = lib.mkOption {
        type = lib.types.nullOr lib.types.externalPath;
        default = null;
        description = ''
          Private key of {option}`tls.certificateFile`, readable by nginx; must be outside
          the Nix store.
        '';
      };
    };

    strictTransportSecurity = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = "max-age=31536000";
      description = ''
        Value of the Strict-Transport-Security header (the origin is HTTPS only), or `null`
        for none.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open ports 80 (ACME, redirect to HTTPS) and 443 in the firewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.tls.certificateFile == null) == (cfg.tls.keyFile == null);
        message = "services.chatstack.loadBalancer: set tls.certificateFile and tls.keyFile together or not at all.";
      }
      {
        assertion = contract.proxy.websocket_timeout_s > contract.websocket.ping_interval_s;
        message = "contract: proxy.websocket_timeout_s must exceed websocket.ping_interval_s, or nginx closes idle websockets between two pings.";
      }
      {
        assertion = !lib.any unquotable (lib.attrValues headers);
        message = "services.chatstack.loadBalancer: a security header value contains a quote, backslash, `$` or control character.";
      }
    ];

    services.nginx = {
      enable = true;
      recommendedProxySettings = lib.mkDefault true;
      recommendedTlsSettings = lib.mkDefault true;
      recommendedOptimisation = lib.mkDefault true;
      recommendedGzipSettings = lib.mkDefault true;
      # stub_status on 127.0.0.1 for Netdata's nginx collector.
      statusPage = lib.mkDefault true;

      # Each websocket holds a client and a gateway connection.
      eventsConfig = ''
        # ${toString capacity.websockets} websockets: ${toString (builtins.length cfg.gatewayServers)} gateways x ${toString contract.connections.websockets_per_gateway}
        worker_connections ${toString capacity.worker_connections};
      '';
      appendConfig = ''
        worker_rlimit_nofile ${toString capacity.worker_rlimit_nofile};
      '';
      # Refusals at info: under a flood, not one error line per refused socket.
      commonHttpConfig = ''
        limit_conn_zone $binary_remote_addr zone=${perAddressZone}:10m;
        limit_conn_status ${toString contract.proxy.per_address_status};
        limit_conn_log_level info;
      '';

      # Any Host name but the chat's (DNS rebinding, scanners) ends here: plain HTTP is
      # answered with the contract's status, TLS is refused at the handshake (no certificate
      # of the chat is shown for a foreign name).
      virtualHosts.chatstack-unknown-host = {
        default = true;
        serverName = "_";
        rejectSSL = true;
        locations."/".return = contract.proxy.unknown_host_status;
      };

      upstreams.${upstreamGateways}.servers = upstreamServers cfg.gatewayServers;
      upstreams.${upstreamHistory}.servers = upstreamServers cfg.historyServers;

      virtualHosts.${cfg.domain} = {
        forceSSL = true;
        enableACME = cfg.tls.certificateFile == null;
        sslCertificate = lib.mkIf (cfg.tls.certificateFile != null) cfg.tls.certificateFile;
        sslCertificateKey = lib.mkIf (cfg.tls.keyFile != null) cfg.tls.keyFile;

        # The static browser client (index.html at the top of the package).
        root = "${cfg.clientPackage}";
        locations.${contract.routes.client} = {
          index = "index.html";
          tryFiles = "$uri $uri/ =404";
        };

        locations."= ${contract.routes.websocket}" = {
          proxyPass = "http://${upstreamGateways}";
          proxyWebsockets = true;
          recommendedProxySettings = true;
          # Idle sockets stay open: longer than the gateways' websocket ping interval.
          extraConfig = failoverConfig + ''
            proxy_read_timeout ${websocketTimeout};
            proxy_send_timeout ${websocketTimeout};
            limit_conn ${perAddressZone} ${toString contract.connections.per_address};
          '';
        };

        # Health and readiness on the public origin, answered by a gateway (as in the local
        # stack): monitors and chat-probe check the origin users reach.
        locations."= ${contract.routes.healthz}" = gatewayCheck;
        locations."= ${contract.routes.readyz}" = gatewayCheck;

        locations.${contract.routes.api_prefix} = {
          proxyPass = "http://${upstreamHistory}";
          recommendedProxySettings = true;
          extraConfig = failoverConfig;
        };

        extraConfig = headerConfig;
      };
    };

    # nginx holds up to worker_rlimit_nofile descriptors (the unit's default limit is lower).
    systemd.services.nginx.serviceConfig.LimitNOFILE = capacity.worker_rlimit_nofile;

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [
      80
      443
    ];
  };
}
