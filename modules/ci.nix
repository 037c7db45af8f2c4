# The CI/CD host: Hydra (with its local PostgreSQL) evaluating the chatstack flake, building
# on this machine with the features VM tests need, behind nginx with TLS; and the RunCommand
# hook that deploys a green `release` of the deploy jobset with deploy-rs (hydra/deploy-hook).
#
# Option facts are from nixos/modules/services/continuous-integration/hydra/default.nix (the
# 26.05 interface: dbi, buildMachinesFiles) and nixos/modules/config/nix-remote-build.nix.
# hydra-notify runs <runcommand> commands as the user hydra-queue-runner with a PATH of zstd
# only, so the hook is a store script with absolute paths and its own PATH.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.chatstack.ci;
  hydra = config.services.hydra;

  # VM tests need nixos-test and kvm (nixos/lib/testing/run.nix requiredSystemFeatures);
  # big-parallel is what nixpkgs marks heavy builds with.
  systemFeatures = [
    "nixos-test"
    "kvm"
    "big-parallel"
    "benchmark"
  ];

  knownHostsFile = pkgs.writeText "chatstack-fleet-known-hosts" (
    lib.concatStrings (lib.mapAttrsToList (address: key: "${address} ${key}\n") cfg.deploy.knownHosts)
  );

  hookConfig = (pkgs.formats.json { }).generate "chatstack-deploy-hook.json" {
    inherit (cfg.deploy)
      project
      jobset
      job
      ;
    flake = cfg.deploy.repository;
    state_dir = cfg.deploy.stateDirectory;
    # deploy-rs passes these to ssh and, as NIX_SSHOPTS, to `nix copy`.
    ssh_opts = lib.concatStringsSep " " [
      "-i ${cfg.deploy.sshKeyFile}"
      "-o IdentitiesOnly=yes"
      "-o UserKnownHostsFile=${knownHostsFile}"
      "-o StrictHostKeyChecking=yes"
    ];
    syslog = true;
  };

  hook = pkgs.writeShellScript "chatstack-deploy-hook" ''
    export PATH=${
      lib.makeBinPath [
        cfg.deploy.package
        config.nix.package
        pkgs.openssh
        pkgs.git
      ]
    }
    exec ${pkgs.python3}/bin/python3 ${../hydra/deploy-hook} --config ${hookConfig}
  '';
in
{
  options.services.chatstack.ci = {
    enable = lib.mkEnableOption "the chatstack CI/CD host (Hydra, its builder, nginx and the deploy hook)";

    domain = lib.mkOption {
      type = lib.types.str;
      example = "hydra.example.com";
      description = "Public name of the Hydra web UI (nginx virtual host, ACME certificate, hydraURL).";
    };

    notificationSender = lib.mkOption {
      type = lib.types.str;
      example = "hydra@example.com";
      description = "Sender address of Hydra's emails (services.hydra.notificationSender).";
    };

    allowedUris = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        "github:"
        "git+https://github.com/"
        "https://github.com/"
      ];
      description = ''
        URI prefixes Hydra's restricted evaluator may fetch: where the flake's inputs come
        from (flake.lock: github:). The repository of {option}`deploy.repository` is added.
      '';
    };

    maxJobs = lib.mkOption {
      type = lib.types.ints.positive;
      default = 2;
      description = "Builds this machine runs at once for Hydra (its build machine entry).";
    };

    tls = {
      certificateFile = lib.mkOption {
        type = lib.types.nullOr lib.types.path;
        default = null;
        description = ''
          Certificate (chain) to serve instead of one from ACME (e.g. in VM tests). With the
          default `null` the certificate comes from ACME (`security.acme` must accept the
          terms and have an email).
        '';
      };

      keyFile = lib.mkOption {
        type = lib.types.nullOr lib.types.externalPath;
        default = null;
        description = "Private key of {option}`tls.certificateFile`, outside the Nix store.";
      };
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open ports 80 (ACME, redirect to HTTPS) and 443 in the firewall.";
    };

    deploy = {
      enable = lib.mkEnableOption "deploying green releases with hydra/deploy-hook (a <runcommand> block)";

      package = lib.mkPackageOption pkgs "deploy-rs" { };

      project = lib.mkOption {
        type = lib.types.str;
        default = "chatstack";
        description = "Hydra project whose release is deployed.";
      };

      jobset = lib.mkOption {
        type = lib.types.str;
        default = "main";
        description = "Jobset whose release is deployed (hydra/spec.json).";
      };

      job = lib.mkOption {
        type = lib.types.str;
        default = "release";
        description = "The gate job (hydraJobs.release).";
      };

      repository = lib.mkOption {
        type = lib.types.str;
        example = "git+https://git.example.com/chatstack";
        description = ''
          The flake repository the jobset evaluates, without `ref`/`rev`: the hook deploys
          `<repository>?rev=<the evaluated revision>#<node>`.
        '';
      };

      sshKeyFile = lib.mkOption {
        type = lib.types.externalPath;
        example = "/run/agenix/hydra-deploy-key";
        description = ''
          Private SSH key deploy-rs logs in to the fleet with, readable by hydra-queue-runner
          (the user hydra-notify runs the hook as) and nobody else.
        '';
      };

      knownHosts = lib.mkOption {
        type = lib.types.attrsOf lib.types.str;
        example = {
          "10.0.0.20" = "ssh-ed25519 AAAA...";
        };
        description = "SSH host key of every deploy target, by the address deploy-rs connects to.";
      };

      stateDirectory = lib.mkOption {
        type = lib.types.str;
        # hydra-init creates /var/lib/hydra/queue-runner for hydra-queue-runner (mode 0700).
        default = "/var/lib/hydra/queue-runner/chatstack-deploy";
        description = ''
          The hook's lock, its record of the live release (live.json) and the stop file
          (`stop`: no further host is deployed while it exists).
        '';
      };
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = (cfg.tls.certificateFile == null) == (cfg.tls.keyFile == null);
            message = "services.chatstack.ci: set tls.certificateFile and tls.keyFile together or not at all.";
          }
        ];

        services.hydra = {
          enable = true;
          hydraURL = "https://${cfg.domain}";
          inherit (cfg) notificationSender;
          # Only nginx talks to Hydra (hydra.conf has using_frontend_proxy = 1).
          listenHost = "127.0.0.1";
          # Packages nixpkgs' cache already has are fetched, not rebuilt.
          useSubstitutes = true;
          minimumDiskFree = lib.mkDefault 20;
          minimumDiskFreeEvaluator = lib.mkDefault 10;
        };

        # This machine is Hydra's builder ("localhost" without a protocol builds locally; the
        # queue runner reads /etc/nix/machines through services.hydra.buildMachinesFiles).
        nix.buildMachines = [
          {
            hostName = "localhost";
            protocol = null;
            systems = [ "x86_64-linux" ];
            supportedFeatures = systemFeatures;
            inherit (cfg) maxJobs;
          }
        ];

        nix.settings = {
          system-features = systemFeatures;
          allowed-uris = cfg.allowedUris ++ lib.optional cfg.deploy.enable cfg.deploy.repository;
        };

        # Old build results go; what Hydra keeps is rooted in services.hydra.gcRootsDir.
        nix.gc = {
          automatic = true;
          dates = "weekly";
          options = "--delete-older-than 30d";
        };
        nix.optimise.automatic = true;

        services.nginx = {
          enable = true;
          recommendedProxySettings = lib.mkDefault true;
          recommendedTlsSettings = lib.mkDefault true;
          recommendedOptimisation = lib.mkDefault true;
          virtualHosts.${cfg.domain} = {
            forceSSL = true;
            enableACME = cfg.tls.certificateFile == null;
            sslCertificate = lib.mkIf (cfg.tls.certificateFile != null) cfg.tls.certificateFile;
            sslCertificateKey = lib.mkIf (cfg.tls.keyFile != null) cfg.tls.keyFile;
            locations."/" = {
              proxyPass = "http://127.0.0.1:${toString hydra.port}";
              recommendedProxySettings = true;
            };
          };
        };

        networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [
          80
          443
        ];
      }

      (lib.mkIf cfg.deploy.enable {
        # RunCommand.pm: `job` is project:jobset:job (whole-segment `*` only); the hook is
        # also run for failed builds of that job and checks buildStatus itself.
        services.hydra.extraConfig = ''
          <runcommand>
            job = ${cfg.deploy.project}:${cfg.deploy.jobset}:${cfg.deploy.job}
            command = ${hook}
          </runcommand>
        '';
      })
    ]
  );
}
