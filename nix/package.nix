# The CLI as a package for nixpkgs: `pkgs.callPackage ./nix/package.nix { }`.
# After changing package-lock.json, update npmDepsHash: run `prefetch-npm-deps package-lock.json`
# (from nixpkgs' prefetch-npm-deps), or set it to lib.fakeHash, build, and copy the hash Nix reports.
{ lib, buildNpmPackage, nodejs_20, python3, makeWrapper, zstd }:

buildNpmPackage {
  pname = "nix-build-cache";
  version = (lib.importJSON ../package.json).version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [ ../package.json ../package-lock.json ../tsconfig.json ../binding.gyp ../src ../workers ../test ../bench ];
  };

  nodejs = nodejs_20;
  npmDepsHash = lib.fakeHash;
  npmBuildScript = "build";
  # The SIMD hasher (src/native/md5.c): node-gyp needs python3; npmConfigHook skips install scripts.
  nativeBuildInputs = [ python3 makeWrapper ];
  postBuild = "npm run build:native";
  # The default compression runs the zstd program.
  postInstall = "wrapProgram $out/bin/nix-build-cache --prefix PATH : ${lib.makeBinPath [ zstd ]}";
  # s3rver and the test helpers are dev-only; the package keeps the runtime dependencies.
  npmPruneFlags = [ "--omit=dev" ];

  # The build must not reach the network, and the AWS SDK's Node-version notice is noise in logs.
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
