/**
  The CLI as a package for nixpkgs. No dependency hash to maintain: importNpmLock fetches each
  package-lock.json entry by its `resolved` URL and checks its `integrity`.

  Type: { … } -> derivation

  Example:
    pkgs.callPackage ./nix/package.nix { }
    pkgs.callPackage ./nix/package.nix { withNativeHasher = false; }
*/
{
  lib,
  buildNpmPackage,
  importNpmLock,
  # The current Node of nixpkgs (Node 20 reached end of life and left nixpkgs).
  nodejs,
  # node-gyp runs gyp, a Python program, to build the native hasher.
  python3,
  makeWrapper,
  # The default compression runs the zstd program; the zstd addon links its library.
  zstd,
  # Build the native addons with node-gyp: the SIMD hasher (src/native/md5.c; without it hashing
  # uses node:crypto) and the blob layout's zstd (src/native/zstd.c; without it blobs are stored
  # uncompressed and compressed caches are misses).
  withNativeHasher ? true,
}:
let
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json ../package-lock.json ../tsconfig.json ../binding.gyp ../src ../workers ../test ../bench
    ];
  };
in
buildNpmPackage {
  pname = "nix-build-cache";
  version = (lib.importJSON ../package.json).version;
  inherit src nodejs;

  npmDeps = importNpmLock { npmRoot = src; };
  npmConfigHook = importNpmLock.npmConfigHook;
  npmBuildScript = "build";

  nativeBuildInputs = [ makeWrapper ] ++ lib.optionals withNativeHasher [ python3 ];
  buildInputs = lib.optionals withNativeHasher [ zstd ];
  # The package's install script builds the hasher but falls back silently: here it is skipped
  # (no dependency has scripts) and the hasher built after tsc, so that a failure fails the package.
  # node-gyp finds Node's headers through the npm_config_nodedir that npmConfigHook sets.
  npmRebuildFlags = [ "--ignore-scripts" ];
  postBuild = lib.optionalString withNativeHasher "npm run build:native";
  postInstall = "wrapProgram $out/bin/nix-build-cache --prefix PATH : ${lib.makeBinPath [ zstd ]}";

  # The AWS SDK's notice about Node versions is noise in build logs.
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    [ "$($out/bin/nix-build-cache --version)" = "$version" ]
    runHook postInstallCheck
  '';

  meta = {
    description = "Incremental Nix builds: restore yesterday's intermediate build files, verified by content hashes";
    license = lib.licenses.mit;
    mainProgram = "nix-build-cache";
    platforms = lib.platforms.linux;
  };
}
