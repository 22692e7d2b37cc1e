# A small stand-in for nixpkgs, for tests on a machine without it: `stdenv.mkDerivation` with
# nixpkgs' phase and hook semantics (test/nix/setup.sh), `finalAttrs` and `overrideAttrs`, and the
# host's tools symlinked into store paths. `toolchainTag` makes a different "compiler" store path.
{ system ? builtins.currentSystem, toolchainTag ? "host" }:
let
  # Every program of the host, as one store path (PATH in a build holds store paths only).
  hostTools = derivation {
    name = "host-tools-${toolchainTag}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/bin && for f in /usr/bin/* /bin/*; do /bin/ln -sf \"$f\" $out/bin/; done" ];
  };

  stdenv = derivation {
    name = "stdenv-standin";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out && /bin/cp ${./setup.sh} $out/setup" ];
  } // { inherit mkDerivation; };

  # nixpkgs' overrideAttrs takes `prev: { … }` or `final: prev: { … }`.
  extend = g: f: final:
    let prev = f final; o = g prev;
    in prev // (if builtins.isFunction o then g final prev else o);

  makeDerivation = rattrs:
    let
      finalAttrs = rattrs finalAttrs;
      attrs = builtins.removeAttrs finalAttrs [ "passthru" ];
      structured = attrs.__structuredAttrs or false;
      env = attrs.env or { };
      drv = derivation ((if structured then attrs else builtins.removeAttrs attrs [ "env" ] // env) // {
        name = attrs.name or "${attrs.pname}-${attrs.version}";
        inherit system;
        builder = "${hostTools}/bin/bash";
        args = [ "-c" "source ${stdenv}/setup; genericBuild" ];
        inherit stdenv;
        buildInputs = (attrs.buildInputs or [ ]) ++ [ hostTools ];
        __ignoreNulls = true;
      });
    in drv // {
      inherit finalAttrs;
      overrideAttrs = g: makeDerivation (extend g rattrs);
    };

  mkDerivation = fnOrAttrs: makeDerivation (if builtins.isFunction fnOrAttrs then fnOrAttrs else (_: fnOrAttrs));
in
{
  inherit stdenv hostTools;
  lib = { };
  callPackage = _: _: throw "the stand-in has no packages: pass `cli` to nix-build-cache";
}
