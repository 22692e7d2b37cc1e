# The Nix tests' C project (project.nix, shape "plain") for builds in the Nix sandbox, where only
# the host paths given in sandbox-paths are visible (no /etc/alternatives, hence CC = gcc). The
# build prints the host uid it runs as (the sandbox maps it to uid 1000) and its environment.
# With `hold` (the path of a FIFO) it is instead a build that keeps its build user busy until
# the test writes a line to that FIFO.
{ src ? null, cacheArgs ? "{}", wrap ? true, run ? "0", hold ? null }:
let
  pkgs = import ./pkgs.nix { };
  project = import ./project.nix { inherit src cacheArgs wrap run; };
in
if hold != null then
  derivation {
    name = "hold-build-user";
    system = builtins.currentSystem;
    builder = "${pkgs.hostTools}/bin/bash";
    args = [ "-c" ''
      echo "nbc-sandbox: build user $(tr -s ' ' < /proc/self/uid_map)" >&2
      echo "nbc-sandbox: holding" >&2
      read -r line < ${hold}
      echo "$line" > $out
    '' ];
    PATH = "${pkgs.hostTools}/bin";
    inherit run;
  }
else
  project.overrideAttrs (prev: {
    CC = "gcc";
    postInstall = ''
      echo "nbc-sandbox: build user $(tr -s ' ' < /proc/self/uid_map)" >&2
      echo "nbc-sandbox: environment begin" >&2
      env >&2
      echo "nbc-sandbox: environment end" >&2
    '';
  })
