{
  config,
  lib,
  ...
}:
let
  cfg = config.services.chatstack.logging;
in
{
  options.services.chatstack.logging = {
    enable = lib.mkEnableOption ''
      journald with explicit retention and rate limits. The chatstack services write one JSON
      object per line to stdout, which systemd hands to the journal as the MESSAGE of one
      entry (read them with `journalctl -u chat-gateway-1 -o cat | jq`)
    '';

    maxUse = lib.mkOption {
      type = lib.types.str;
      default = "2G";
      description = "Most disk space the persistent journal may use (journald.conf SystemMaxUse=).";
    };

    keepFree = lib.mkOption {
      type = lib.types.str;
      default = "1G";
      description = "Disk space journald leaves free for others (SystemKeepFree=).";
    };

    maxRetention = lib.mkOption {
      type = lib.types.str;
      default = "30day";
      description = "Entries older than this are deleted (MaxRetentionSec=).";
    };

    rateLimitInterval = lib.mkOption {
      type = lib.types.str;
      default = "30s";
      description = "Interval of the per-service rate limit (RateLimitIntervalSec=).";
    };

    rateLimitBurst = lib.mkOption {
      type = lib.types.ints.positive;
      # Above journald's 10000: every refused frame is one log line (up to limits.max_errors
      # per socket before it is closed), and many abusive sockets at once must stay visible.
      default = 20000;
      description = ''
        Messages one service may log per {option}`rateLimitInterval` before journald drops
        the rest of that interval (RateLimitBurst=, scaled by journald with free disk space).
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    services.journald = {
      storage = "persistent";
      inherit (cfg) rateLimitInterval rateLimitBurst;
      # https://www.freedesktop.org/software/systemd/man/journald.conf.html
      extraConfig = ''
        SystemMaxUse=${cfg.maxUse}
        SystemKeepFree=${cfg.keepFree}
        MaxRetentionSec=${cfg.maxRetention}
        Compress=yes
      '';
    };
  };
}
