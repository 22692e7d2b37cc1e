# The derivations the Nix tests build: one C project (made by the test in `src`) in each shape a
# user's derivation can take, wrapped with nix-build-cache unless `wrap` is false.
{ src, shape ? "plain", cacheArgs ? "{}", wrap ? true, run ? "0", toolchainTag ? "host" }:
let
  pkgs = import ./pkgs.nix { inherit toolchainTag; };
  inherit (pkgs.stdenv) mkDerivation;
  addCache = import ../../nix ({ inherit pkgs; } // builtins.fromJSON cacheArgs);
  cached = drv: if wrap then addCache drv else drv;
  # Changing `run` forces a rebuild of otherwise identical sources.
  common = { pname = "demo"; version = "1"; src = /. + src; testRun = run; };
  shapes = {
    plain = cached (mkDerivation common);
    structured = cached (mkDerivation (common // { __structuredAttrs = true; env.DEMO_FLAG = "on"; }));
    finalAttrs = cached (mkDerivation (finalAttrs: common // {
      optimisation = "1";
      makeFlags = "CFLAGS=-O${finalAttrs.optimisation}";
      preConfigure = null;
    }));
    overridden = (cached (mkDerivation common)).overrideAttrs (final: prev: {
      postInstall = "echo overridden > $out/marker";
    });
    customConfigure = cached (mkDerivation (common // {
      configurePhase = "runHook preConfigure; echo custom configure; runHook postConfigure";
    }));
    cdBuild = cached (mkDerivation (common // {
      configurePhase = "runHook preConfigure; mkdir -p build; cd build; runHook postConfigure";
      buildPhase = "runHook preBuild; make -f ../Makefile VPATH=..; runHook postBuild";
      installPhase = "runHook preInstall; make -f ../Makefile VPATH=.. install PREFIX=$out; runHook postInstall";
    }));
    sourceRoot = cached (mkDerivation (common // { sourceRoot = "source/sub"; }));
    postPatch = cached (mkDerivation (common // {
      # Rewrites with identical content: a fresh mtime that must not cause a rebuild.
      postPatch = "sed -i 's/SCALE 3/SCALE 3/' common.h";
    }));
    inTree = cached (mkDerivation common);
    noConfigure = cached (mkDerivation (common // { dontConfigure = true; }));
    failing = cached (mkDerivation common);
    envDump = cached (mkDerivation (common // { postInstall = "{ env; set; } > $out/environment"; }));
  };
in
shapes.${shape}
