# The stand-in nixpkgs (pkgs.nix) with what nix/package.nix and flake.nix use: `callPackage`, a
# few `lib` functions, and stubs of buildNpmPackage, importNpmLock and the tools. Stubs are
# derivations that are evaluated, never built; each keeps the arguments it was given (`args`) so
# tests can check them. importNpmLock checks, as the real one does by fetching, that every
# package-lock entry names a URL and an integrity hash.
{ system ? builtins.currentSystem }:
let
  inherit (builtins) any attrNames concatStringsSep filter functionArgs intersectAttrs isPath match stringLength substring;

  base = import ./pkgs.nix { inherit system; };

  stub = name: attrs: derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "echo 'a stand-in package: evaluate it, do not build it' >&2; exit 1" ];
  } // attrs;

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  # A path is kept when it is a member of the file set, inside one, or a directory above one.
  within = members: path: any (m: path == m || hasPrefix "${m}/" path || hasPrefix "${path}/" m) members;

  lib = {
    importJSON = path: builtins.fromJSON (builtins.readFile path);
    optionals = cond: list: if cond then list else [ ];
    optionalString = cond: s: if cond then s else "";
    makeBinPath = packages: concatStringsSep ":" (map (p: "${p}/bin") packages);
    licenses.mit = { spdxId = "MIT"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    fileset = {
      unions = paths: paths;
      toSource = { root, fileset }: builtins.path {
        path = root;
        name = "source";
        filter = path: _type: within (map toString fileset) path;
      };
    };
  };

  importNpmLock = {
    __functor = _: { npmRoot, ... }@args:
      let
        lock = lib.importJSON (npmRoot + "/package-lock.json");
        entries = filter (key: key != "") (attrNames lock.packages);
        fetchable = key: let e = lock.packages.${key}; in
          e ? integrity && match "https://.*\\.tgz" (e.resolved or "") != null;
        missing = filter (key: !(fetchable key)) entries;
      in
      if missing != [ ] then throw "importNpmLock stand-in: no resolved URL or integrity for ${concatStringsSep ", " missing}"
      else stub "npm-deps" { inherit args; packageCount = builtins.length entries; };
    npmConfigHook = stub "npm-config-hook" { };
  };

  python3 = stub "python3" { };

  pkgs = base // {
    inherit lib importNpmLock python3;
    nodejs = stub "nodejs-24" { python = python3; };
    makeWrapper = stub "make-wrapper" { };
    zstd = stub "zstd" { };
    hello = base.stdenv.mkDerivation { name = "hello-standin"; };
    buildNpmPackage = args: stub "${args.pname}-${args.version}" { inherit args; inherit (args) meta; };
    callPackage = fn: overrides:
      let f = if isPath fn then import fn else fn;
      in f (intersectAttrs (functionArgs f) pkgs // overrides);
  };
in
pkgs
