# The stand-in's generic builder: nixpkgs' stdenv/generic/setup.sh reduced to what a build cache
# wrapper meets. Same options (set -eu -o pipefail, inherit_errexit, nullglob), same runHook with
# <hook> and <hook>s arrays, same phases and pre/post hooks, the same failureHook in an EXIT trap.
set -eu -o pipefail
shopt -s inherit_errexit nullglob

if [ -e "$NIX_BUILD_TOP/.attrs.sh" ]; then
  # __structuredAttrs: attributes come as shell variables, not exported; env.* is exported.
  source "$NIX_BUILD_TOP/.attrs.sh"
  for key in "${!env[@]}"; do export "$key=${env[$key]}"; done
  out=${outputs[out]}
fi

_callImplicitHook() {
  local def="$1" hookName="$2"
  if declare -F "$hookName" >/dev/null; then "$hookName"
  elif [ -n "${!hookName:-}" ]; then eval "${!hookName}"
  else return "$def"; fi
}

_eval() {
  if declare -F "$1" >/dev/null 2>&1; then "$@"; else eval "$1"; fi
}

runHook() {
  local hookName="$1"; shift
  local hooksSlice="${hookName%Hook}Hooks[@]"
  local hook
  for hook in "_callImplicitHook 0 $hookName" ${!hooksSlice+"${!hooksSlice}"}; do
    _eval "$hook" "$@"
  done
  return 0
}

exitHandler() {
  exitCode="$?"
  set +e
  if (( exitCode != 0 )); then runHook failureHook; fi
  return "$exitCode"
}
trap exitHandler EXIT

PATH=
for input in ${buildInputs[@]} ${nativeBuildInputs[@]+"${nativeBuildInputs[@]}"}; do
  PATH="${PATH:+$PATH:}$input/bin"
done
export PATH

unpackPhase() {
  runHook preUnpack
  cp -pr -- "$src" source
  sourceRoot=${sourceRoot:-source}
  chmod -R u+w -- "$sourceRoot"
  cd "$sourceRoot"
  runHook postUnpack
}

patchPhase() {
  runHook prePatch
  runHook postPatch
}

configurePhase() {
  runHook preConfigure
  runHook postConfigure
}

buildPhase() {
  runHook preBuild
  make ${makeFlags[@]+"${makeFlags[@]}"}
  runHook postBuild
}

installPhase() {
  runHook preInstall
  mkdir -p "$out"
  make install PREFIX="$out"
  runHook postInstall
}

genericBuild() {
  local phase
  for phase in ${phases[@]:-unpackPhase patchPhase configurePhase buildPhase installPhase}; do
    case "$phase" in
      configurePhase) [ -z "${dontConfigure:-}" ] || continue ;;
      buildPhase) [ -z "${dontBuild:-}" ] || continue ;;
    esac
    # A phase given as an attribute (a string) replaces the function, as in nixpkgs.
    if [ -n "${!phase:-}" ]; then eval "${!phase}"; else "$phase"; fi
  done
}
