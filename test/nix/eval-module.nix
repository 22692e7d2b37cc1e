# Evaluates a NixOS module without nixpkgs: a stand-in `lib` with the few functions modules use,
# defaults taken from the module's options, `settings` laid over them, `mkIf` resolved. Prints
# the resulting config (nix-instantiate --eval --strict --json).
{ module, settings }:
let
  isOption = v: builtins.isAttrs v && (v._type or null) == "option";
  isIf = v: builtins.isAttrs v && (v._type or null) == "if";
  lib = {
    mkOption = spec: spec // { _type = "option"; };
    mkEnableOption = what: { _type = "option"; default = false; description = "Whether to enable ${what}."; type = "bool"; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    types = { package = "package"; str = "str"; bool = "bool"; listOf = t: "list of ${t}"; nullOr = t: "null or ${t}"; };
  };
  pkgs = {
    callPackage = path: args: { outPath = "/nix/store/00000000000000000000000000000000-nix-build-cache"; };
    coreutils = { outPath = "/nix/store/00000000000000000000000000000000-coreutils"; };
  };
  # Option declarations → their defaults; an option without a default must be set.
  defaults = opts: builtins.mapAttrs (name: v:
    if isOption v then (v.default or (throw "option ${name} has no default and is not set"))
    else defaults v) opts;
  # `settings` over `base`, attribute set by attribute set.
  overlay = base: over: base // builtins.mapAttrs (name: v:
    if builtins.isAttrs v && builtins.isAttrs (base.${name} or null) then overlay base.${name} v else v) over;
  resolve = v:
    if isIf v then (if v.condition then resolve v.content else { })
    else if builtins.isAttrs v then builtins.mapAttrs (_: resolve) (builtins.removeAttrs v (builtins.filter (n: isIf v.${n} && !v.${n}.condition) (builtins.attrNames v)))
    else v;
  declared = (import module { config = throw "options may not depend on config"; inherit lib pkgs; }).options;
  config = overlay (defaults declared) settings;
in
resolve (import module { inherit config lib pkgs; }).config
