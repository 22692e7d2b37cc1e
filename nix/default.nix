/**
  Wraps a `stdenv.mkDerivation` build with nix-build-cache: restore in `preConfigure`, settle in
  `postConfigure`, save in `preInstall`, each appended to the derivation's own hook, in a subshell
  that fails open.

  Type: { pkgs, cache-name, master-cache, cache-dirs, s3-bucket, aws-key, aws-secret, … }
        -> derivation -> derivation

  Example:
    let add-build-cache = import ./nix {
          inherit pkgs;
          aws-key = null; aws-secret = null;
          aws-credentials-file = "/run/keys/nbc";  # a string: read at build time, never copied to the store
          cache-name = "aeson/pr-42"; master-cache = "aeson/main";
          cache-dirs = [ "dist" ]; s3-bucket = "aeson-build";
        };
    in add-build-cache pkgs.haskellPackages.aeson
*/
{
  # The package set: used for the packaged CLI (unless `cli` is given).
  pkgs,
  # Required (null only so that a misspelling of it is reported as such). This build's cache, e.g. "<repository>/<branch>".
  cache-name ? null,
  # Required. Tried when cache-name has no archive, e.g. the main branch's cache.
  master-cache ? null,
  # Required. Directories (relative to the source root) kept between builds: [ "dist" ], [ "elm-stuff" ], [ "." ].
  cache-dirs ? null,
  # S3 bucket for the archives; null with `store` set instead.
  s3-bucket ? null,
  # AWS access key id as a string. It ends up in the world-readable .drv: prefer aws-credentials-file.
  aws-key ? null,
  # AWS secret as a string. It ends up in the world-readable .drv: prefer aws-credentials-file.
  aws-secret ? null,
  # S3-compatible endpoint URL (MinIO, Ceph, …); null for AWS.
  s3-endpoint ? null,
  # S3 region.
  s3-region ? "us-east-1",
  # Key prefix inside the bucket.
  s3-prefix ? "",
  # Path (a string, not a Nix path) of an AWS credentials file, read at build time.
  aws-credentials-file ? null,
  # A local directory store instead of S3 (a string path the builder can write to).
  store ? null,
  # More cache names tried after master-cache, in order.
  fallbacks ? [ ],
  # A command replacing the packaged CLI, e.g. "/usr/bin/node /src/nix-build-cache/dist/src/cli.js".
  cli ? null,
  # Fail the build on cache problems instead of warning (for testing the cache itself).
  strict ? false,
  # Part of the cache key so a cache made with another toolchain is never restored: "auto" derives
  # it from the derivation's build inputs and system, a string overrides it, null turns it off.
  toolchain-salt ? "auto",
  # Also save when the build fails (appended to nixpkgs' failureHooks), so a retry resumes.
  save-on-failure ? false,
  # Extra arguments for every CLI call, e.g. [ "--socket-timeout" "30" ].
  extra-args ? [ ],
  ...
}@args:
drv:
let
  inherit (builtins) attrNames concatStringsSep elem filter functionArgs isPath isString map replaceStrings throw;

  # `...` above lets a misspelled argument through: name it with the nearest valid one instead.
  known = attrNames (functionArgs (import ./default.nix));
  unknown = filter (name: !(elem name known)) (attrNames args);
  missing = filter (name: args.${name} or null == null) [ "cache-name" "master-cache" "cache-dirs" ];
  unknownError = name:
    let near = import ./nearest.nix known name;
    in "nix-build-cache: unknown argument '${name}'; "
      + (if near != null then "did you mean '${near}'?" else "the arguments are: ${concatStringsSep ", " known}");

  quote = s: "'" + replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
  optionalString = cond: s: if cond then s else "";
  orEmpty = hook: if hook == null then "" else hook + "\n";

  command =
    if cli != null then cli
    else "${pkgs.callPackage ./package.nix { }}/bin/nix-build-cache";

  location =
    if store != null then store
    else if s3-bucket != null then "s3://${s3-bucket}${optionalString (s3-prefix != "") "/${s3-prefix}"}"
    else throw "nix-build-cache: set s3-bucket (or store, for a local directory)";

  # Store paths of the toolchain, never `src` (it changes with every commit).
  inputPaths = map toString ([ (drv.stdenv or "") ] ++ (drv.buildInputs or [ ]) ++ (drv.nativeBuildInputs or [ ])
    ++ (drv.propagatedBuildInputs or [ ]) ++ (drv.propagatedNativeBuildInputs or [ ]));
  salt =
    if toolchain-salt == "auto" then
      builtins.hashString "sha256" (builtins.unsafeDiscardStringContext (concatStringsSep "\n" ([ drv.system or builtins.currentSystem ] ++ inputPaths)))
    else toolchain-salt;

  # String credentials travel as two attributes (so the hook texts never hold them); they are kept
  # from the build's processes from configure on and dropped once save has run.
  stringCredentials = aws-credentials-file == null && (aws-key != null || aws-secret != null);
  credentialsEnv = optionalString stringCredentials
    "AWS_ACCESS_KEY_ID=\"\${nixBuildCacheAwsKey-}\" AWS_SECRET_ACCESS_KEY=\"\${nixBuildCacheAwsSecret-}\" ";
  hideCredentials = optionalString stringCredentials ''
    export -n nixBuildCacheAwsKey nixBuildCacheAwsSecret 2>/dev/null || true
  '';
  dropCredentials = optionalString stringCredentials ''
    unset nixBuildCacheAwsKey nixBuildCacheAwsSecret
  '';

  common = concatStringsSep " " (map quote ([ "--store" location "--cache-name" cache-name ]
    ++ builtins.concatMap (dir: [ "--cache-dir" dir ]) cache-dirs
    ++ (if s3-endpoint != null then [ "--endpoint" s3-endpoint ] else [ ])
    ++ (if s3-bucket != null && store == null then [ "--region" s3-region ] else [ ])
    ++ (if aws-credentials-file != null then [ "--credentials-file" aws-credentials-file ] else [ ])
    ++ (if salt != null then [ "--salt" salt ] else [ ])
    ++ (if strict then [ "--strict" ] else [ ])
    ++ extra-args));

  # The default compression runs the zstd program (the stand-in package set of the tests has none).
  zstdOnPath = optionalString (pkgs ? zstd) "PATH=${pkgs.zstd}/bin:$PATH ";

  fallbackArgs = concatStringsSep " " (map (name: "--fallback ${quote name}") ([ master-cache ] ++ fallbacks));

  # `set +x` first: a build with tracing on must not print the credentials. The subshell keeps
  # cd, exports and exit of the step out of the builder's shell; `||` keeps a failure out of the build.
  step = what: args: ''
    ( set +x; ${zstdOnPath}${credentialsEnv}${command} ${what} ${common} ${args} ) \
      || echo "nix-build-cache: ${what} failed; the build goes on without it" >&2
  '';

  # After configure: files it rewrote with the content they were restored with get their times back.
  settleArgs = concatStringsSep " " (map quote (builtins.concatMap (dir: [ "--cache-dir" dir ]) cache-dirs
    ++ (if strict then [ "--strict" ] else [ ])));
  settleHook = ''
    ( set +x; ${command} settle ${settleArgs} ) \
      || echo "nix-build-cache: settle failed; the build goes on without it" >&2
  '';

  restoreHook = hideCredentials + step "restore" fallbackArgs + optionalString save-on-failure ''
    _nixBuildCacheSaveOnFailure() {
      ${step "save" "--build-failed"}
    }
    failureHooks+=(_nixBuildCacheSaveOnFailure)
  '';
in
if unknown != [ ] then
  throw (unknownError (builtins.head unknown))
else if missing != [ ] then
  throw "nix-build-cache: ${builtins.head missing} is required"
else if isPath aws-credentials-file then
  throw "nix-build-cache: pass aws-credentials-file as a string; a Nix path would copy the secret into the store"
else if !(isString cache-name && isString master-cache) then
  throw "nix-build-cache: cache-name and master-cache must be strings"
else if cache-dirs == [ ] then
  throw "nix-build-cache: cache-dirs must name at least one directory"
else
  drv.overrideAttrs (old: {
    preConfigure = orEmpty (old.preConfigure or null) + restoreHook;
    postConfigure = orEmpty (old.postConfigure or null) + settleHook;
    preInstall = orEmpty (old.preInstall or null) + step "save" "" + dropCredentials;
  } // (if stringCredentials then { nixBuildCacheAwsKey = aws-key; nixBuildCacheAwsSecret = aws-secret; } else { }))
