/**
  NixOS module `services.nix-build-cache`: what sandboxed builds need to use a cache. Either a local
  store directory shared by the build users (made 2775 root:nixbld, listed in
  extra-sandbox-paths), or the host daemon (`nix-build-cache serve`, a systemd service holding the
  upstream store and its credentials), whose socket directory is listed instead.

  Example:
    services.nix-build-cache = {
      enable = true;
      daemon = { enable = true; upstream = "s3://my-bucket/caches"; credentialsFile = "/run/keys/nbc"; };
    };
  then wrap derivations with `store = "unix:///run/nix-build-cache/socket";` (or the storeDir).
*/
{ config, lib, pkgs, ... }:
let
  cfg = config.services.nix-build-cache;
  inherit (lib) mkEnableOption mkIf mkOption optional optionals types;
  daemon = cfg.daemon;
  socketDir = dirOf daemon.socket;
  serveArgs = [ "serve" "--socket" daemon.socket "--store" daemon.upstream "--socket-group" "nixbld"
    "--disk-cache" daemon.diskCache "--max-disk" daemon.maxDisk ]
    ++ optionals (daemon.credentialsFile != null) [ "--credentials-file" daemon.credentialsFile ]
    ++ optionals (daemon.endpoint != null) [ "--endpoint" daemon.endpoint ]
    ++ optional daemon.readOnly "--read-only"
    ++ builtins.concatMap (writer: [ "--writer" writer ]) daemon.writers
    ++ daemon.extraArgs;
  quote = arg: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] arg + "'";
in
{
  options.services.nix-build-cache = {
    enable = mkEnableOption "nix-build-cache for sandboxed Nix builds";
    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      description = "The nix-build-cache package (its CLI runs the daemon).";
    };
    storeDir = mkOption {
      type = types.str;
      default = "/var/cache/nix-build-cache";
      description = "Local store shared by the build users (used when the daemon is off).";
    };
    daemon = {
      enable = mkEnableOption "the host daemon, for S3 (builds have no network and no credentials)";
      upstream = mkOption {
        type = types.str;
        example = "s3://my-bucket/caches";
        description = "The store the daemon serves: s3://BUCKET[/PREFIX] or a directory.";
      };
      socket = mkOption {
        type = types.str;
        default = "/run/nix-build-cache/socket";
        description = "Unix socket of the daemon; its directory is added to extra-sandbox-paths.";
      };
      credentialsFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "AWS credentials file the daemon reads (a string path: never copied to the store).";
      };
      endpoint = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "S3-compatible endpoint; null for AWS.";
      };
      diskCache = mkOption {
        type = types.str;
        default = "/var/cache/nix-build-cache-daemon";
        description = "Where the daemon keeps archives on local disk.";
      };
      maxDisk = mkOption {
        type = types.str;
        default = "10G";
        description = "Size cap of the disk cache (least recently used evicted first).";
      };
      readOnly = mkOption {
        type = types.bool;
        default = false;
        description = "Serve restores only; refuse saves.";
      };
      writers = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "nixbld1" "@ci-builders" ];
        description = "Users (name or uid) and @groups allowed to save and delete; empty: every build user.";
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "More arguments for nix-build-cache serve.";
      };
    };
  };

  config = mkIf cfg.enable {
    # `?`: a missing path must not fail every build.
    nix.settings.extra-sandbox-paths = [ (if daemon.enable then "${socketDir}?" else "${cfg.storeDir}?") ];
    systemd.tmpfiles.rules = optional (!daemon.enable) "d ${cfg.storeDir} 2775 root nixbld - -";
    systemd.services.nix-build-cache = mkIf daemon.enable {
      description = "nix-build-cache daemon for sandboxed Nix builds";
      wantedBy = [ "multi-user.target" ];
      before = [ "nix-daemon.service" ];
      serviceConfig = {
        ExecStart = builtins.concatStringsSep " " ([ "${cfg.package}/bin/nix-build-cache" ] ++ map quote serveArgs);
        Restart = "on-failure";
        # The socket directory: 0755, so build users reach the socket (0660, group nixbld).
        ExecStartPre = "${pkgs.coreutils}/bin/install -d -m 0755 ${socketDir} ${daemon.diskCache}";
      };
    };
  };
}
