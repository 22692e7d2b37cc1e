{
  description = "nix-build-cache: incremental Nix builds from restored intermediate build files";

  # No flake.lock is kept: the flake builds with the nixpkgs it is given
  # (`inputs.nix-build-cache.inputs.nixpkgs.follows = "nixpkgs";`).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      package = pkgs: pkgs.callPackage ./nix/package.nix { };
    in
    {
      packages = forAllSystems (system: rec {
        nix-build-cache = package nixpkgs.legacyPackages.${system};
        default = nix-build-cache;
      });

      apps = forAllSystems (system: {
        default = {
          type = "app";
          program = "${self.packages.${system}.default}/bin/nix-build-cache";
          meta.description = "Restore, settle and save the intermediate files of Nix builds";
        };
      });

      checks = forAllSystems (system:
        let pkgs = nixpkgs.legacyPackages.${system};
        in {
          # Its install check runs the installed CLI.
          package = self.packages.${system}.default;
          # The packaged CLI in a real (sandboxed) build: restore misses, save writes beside the
          # sources; strict, so that any cache problem fails the check instead of warning.
          wrapped-hello = self.lib.wrap {
            inherit pkgs;
            cache-name = "hello"; master-cache = "hello"; cache-dirs = [ "." ];
            store = "../nbc-store"; strict = true;
          } pkgs.hello;
        });

      # The wrapper: `lib.wrap { inherit pkgs; cache-name = …; … } drv` (see nix/default.nix).
      lib.wrap = import ./nix/default.nix;

      overlays.default = final: prev: { nix-build-cache = package final; };

      nixosModules.default = import ./nix/module.nix;
    };
}
