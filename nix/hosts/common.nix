# What every host of the fleet has: its name, SSH for deploy-rs and agenix, the nftables
# firewall the chatstack modules add source-restricted rules to, journald and Netdata.
{
  config,
  lib,
  chatstackHost,
  ...
}:
let
  inherit (chatstackHost) name host fleet;

  # The pipeline's deploy keys (secrets of kind ssh-ed25519, e.g. hydra-deploy-key held by the
  # ci host): authorized on the hosts the pipeline deploys (fleet.toml deploy_order).
  pipelineKeys = lib.optionals (lib.elem host.role (fleet.deploy_order or [ ])) (
    map (secret: lib.fileContents (chatstackHost.publicKeyFile secret)) (
      lib.attrNames (lib.filterAttrs (_: s: s.kind == "ssh-ed25519") fleet.secrets)
    )
  );

  # deploy-rs logs in as fleet.ssh_user with these keys: the admins given as SSH keys (an age
  # key cannot log in), the optional fleet-wide `ssh_authorized_keys` list and the pipeline's
  # deploy keys.
  authorizedKeys =
    lib.filter (lib.hasPrefix "ssh-") (lib.attrValues fleet.admins)
    ++ fleet.ssh_authorized_keys or [ ]
    ++ pipelineKeys;
in
{
  assertions = [
    {
      # Root cannot log in and no password works: without a key nobody can reach the host.
      assertion = config.users.users.${fleet.ssh_user}.openssh.authorizedKeys.keys != [ ];
      message = ''
        nix/fleet.toml: no SSH public key can log in as ${fleet.ssh_user} (deploy-rs) on ${name}, and
        root login is off, so this host could only be reached at its console. Add an admin
        whose key is an SSH key (`[admins] name = "ssh-ed25519 AAAA..."`; age keys cannot log
        in), or list SSH public keys in `ssh_authorized_keys = [ "ssh-ed25519 AAAA..." ]`.
      '';
    }
  ];

  networking.hostName = name;
  # The modules' firewall rules limited to source addresses use nftables here
  # (networking.firewall.extraInputRules; modules/lib.nix also supports iptables).
  networking.nftables.enable = true;

  # The host key is also the agenix identity (age.identityPaths defaults to these keys).
  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "no";
    };
  };

  users.users.${fleet.ssh_user} = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
    openssh.authorizedKeys.keys = authorizedKeys;
  };
  # deploy-rs activates with `sudo` and copies closures as this user.
  security.sudo.wheelNeedsPassword = false;
  # root is named too: the NixOS module defines `[ "root" ]` as a config value in current
  # nixpkgs (lists concatenate) but as the option's default in older ones (a definition
  # replaces it). A repeated name does no harm in nix.conf.
  nix.settings.trusted-users = [
    "root"
    fleet.ssh_user
  ];

  services.chatstack.logging.enable = true;
  services.chatstack.monitoring.enable = true;

  time.timeZone = "UTC";
  system.stateVersion = "26.05";

  # EXAMPLE hardware: replace with the real machine's hardware-configuration.nix. The address
  # in fleet.toml must be this host's (static or a DHCP reservation): services bind to it.
  boot.loader.grub.device = lib.mkDefault "/dev/sda";
  fileSystems."/" = lib.mkDefault {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  networking.useDHCP = lib.mkDefault true;
}
