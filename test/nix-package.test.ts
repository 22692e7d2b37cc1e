import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { copyCheckout, REPO, trackedFiles } from './checkout.js';
import { runCommand, tempDir } from './helpers.js';

// nix/package.nix and flake.nix evaluated by real Nix over the stand-in nixpkgs (test/nix/npm-pkgs.nix):
// no nixpkgs is reachable here, so nothing is built; the stand-in's stubs keep the arguments they get.
const STANDIN = join(REPO, 'test/nix');
const SYSTEMS = ['aarch64-linux', 'x86_64-linux'];
const test = suite('Nix packaging: package.nix and the flake over a stand-in nixpkgs');
let work: string;
let remove: () => Promise<void>;

function nix(command: string, args: string[]) {
  return runCommand(command, args, {
    env: { HOME: work, NIX_CONFIG: 'substituters =\nextra-experimental-features = nix-command flakes\nflake-registry =' },
  });
}

async function evaluate(expr: string): Promise<any> {
  const result = await nix('nix-instantiate', ['--read-write-mode', '--eval', '--strict', '--json', '-E', expr]);
  assert.is(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

const callPackage = (args = '{ }') =>
  `let pkgs = import ${STANDIN}/npm-pkgs.nix { }; p = pkgs.callPackage ${REPO}/nix/package.nix ${args}; in`;

test.before(async () => {
  ({ dir: work, remove } = await tempDir('nbc-flake-'));
  // The repository as a clone has it, and a flake whose legacyPackages are the stand-in.
  await copyCheckout(join(work, 'repo'));
  mkdirSync(join(work, 'standin'));
  for (const file of ['pkgs.nix', 'npm-pkgs.nix', 'setup.sh']) copyFileSync(join(STANDIN, file), join(work, 'standin', file));
  writeFileSync(join(work, 'standin/flake.nix'), `{ outputs = _: { legacyPackages = builtins.listToAttrs (map
    (system: { name = system; value = import ./npm-pkgs.nix { inherit system; }; }) ${JSON.stringify(SYSTEMS).replace(/,/g, ' ')}); }; }`);
  const lock = await nix('nix', ['flake', 'lock', `path:${work}/repo`, '--override-input', 'nixpkgs', `path:${work}/standin`]);
  assert.is(lock.code, 0, lock.stderr);
});
test.after(() => remove());

test('callPackage: the current nodejs, importNpmLock (no hash), its npmConfigHook, mainProgram, a version check', async () => {
  const got = await evaluate(`${callPackage()} {
    nodejs = p.args.nodejs == pkgs.nodejs; npmDeps = p.args.npmDeps.args; hook = p.args.npmConfigHook == pkgs.importNpmLock.npmConfigHook;
    src = p.args.src == p.args.npmDeps.args.npmRoot; files = builtins.attrNames (builtins.readDir p.args.src);
    hashArgs = builtins.filter (n: builtins.match ".*[Hh]ash.*" n != null) (builtins.attrNames p.args);
    inherit (p.args) pname version postBuild installCheckPhase doInstallCheck; mainProgram = p.meta.mainProgram;
    nativeBuildInputs = map (d: d.name) p.args.nativeBuildInputs; }`);
  assert.ok(got.nodejs, 'nodejs is the package set\'s current nodejs');
  assert.ok(got.hook, 'npmConfigHook is importNpmLock\'s');
  assert.ok(got.src, 'importNpmLock reads the lock from the package\'s source');
  assert.equal(got.hashArgs, []);
  assert.is(got.pname, 'nix-build-cache');
  assert.is(got.version, JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
  assert.is(got.mainProgram, 'nix-build-cache');
  assert.is(got.postBuild, 'npm run build:native');
  assert.equal(got.nativeBuildInputs, ['make-wrapper', 'python3']);
  assert.ok(got.doInstallCheck);
  assert.match(got.installCheckPhase, '[ "$($out/bin/nix-build-cache --version)" = "$version" ]');
  assert.equal(got.files, ['bench', 'binding.gyp', 'package-lock.json', 'package.json', 'src', 'test', 'tsconfig.json', 'workers']);
});

test('withNativeHasher = false: no node-gyp step and no python3', async () => {
  const got = await evaluate(`${callPackage('{ withNativeHasher = false; }')} {
    inherit (p.args) postBuild; nativeBuildInputs = map (d: d.name) p.args.nativeBuildInputs; }`);
  assert.equal(got, { postBuild: '', nativeBuildInputs: ['make-wrapper'] });
});

test('every package-lock entry has the resolved URL and integrity importNpmLock fetches by', () => {
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string; integrity?: string }> };
  const missing = Object.entries(lock.packages).filter(([key, entry]) => key !== '' && !(entry.resolved?.startsWith('https://') && entry.integrity));
  assert.equal(missing.map(([key]) => key), []);
});

test('no fake or placeholder hash in nix/ or the flake; the dropped Node 20 package named nowhere', async () => {
  const files = await trackedFiles();
  const nodejs20 = 'nodejs' + '_20';
  for (const path of files) {
    const text = readFileSync(join(REPO, path), 'utf8');
    assert.not.ok(text.includes(nodejs20), `${path} names ${nodejs20}`);
    if (path.startsWith('nix/') || path.startsWith('flake.')) {
      assert.not.match(text, /fakeHash|fakeSha256|lib\.fake|sha256-A{20}|0{32}/, `${path} has a placeholder hash`);
    }
  }
});

test('flake show: packages, apps and checks for each system, lib, the overlay and the NixOS module', async () => {
  const result = await nix('nix', ['flake', 'show', '--json', `path:${work}/repo`]);
  assert.is(result.code, 0, result.stderr);
  const shown = JSON.parse(result.stdout);
  assert.equal(Object.keys(shown).sort(), ['apps', 'checks', 'lib', 'nixosModules', 'overlays', 'packages']);
  for (const system of SYSTEMS) {
    assert.is(shown.packages[system].default.name, 'nix-build-cache-0.1.0');
    assert.is(shown.apps[system].default.type, 'app');
    assert.is(shown.checks[system].package.type, 'derivation');
    assert.is(shown.checks[system]['wrapped-hello'].name, 'hello-standin');
  }
  assert.is(shown.overlays.default.type, 'nixpkgs-overlay');
  assert.is(shown.nixosModules.default.type, 'nixos-module');
});

test('flake check passes (evaluation; the stand-in builds nothing)', async () => {
  const result = await nix('nix', ['flake', 'check', '--no-build', `path:${work}/repo`]);
  assert.is(result.code, 0, result.stderr);
});

test('the app runs the package, the overlay adds it, lib.wrap is the wrapper (its check runs the package, strict), the module is nix/module.nix', async () => {
  const result = await nix('nix', ['eval', '--json', '--impure', '--expr', `let
    flake = builtins.getFlake "path:${work}/repo"; pkgs = import ${work}/standin/npm-pkgs.nix { }; sys = builtins.currentSystem;
    wrapped = flake.lib.wrap { inherit pkgs; cache-name = "a"; master-cache = "a"; cache-dirs = [ "obj" ]; store = "/tmp/c"; cli = "nbc"; }
      (pkgs.stdenv.mkDerivation { name = "demo"; });
  in {
    program = flake.apps.\${sys}.default.program == "\${flake.packages.\${sys}.default}/bin/nix-build-cache";
    overlay = (flake.overlays.default pkgs pkgs).nix-build-cache.meta.mainProgram;
    restores = builtins.match ".*nbc restore .*" wrapped.preConfigure != null;
    module = builtins.functionArgs flake.nixosModules.default;
    check = builtins.match ".*[(] set [+]x; PATH=[^ ]*-zstd/bin:[$]PATH ([^ ]*) restore .* '--strict' .*" flake.checks.\${sys}.wrapped-hello.preConfigure
      == [ "\${flake.packages.\${sys}.default}/bin/nix-build-cache" ];
  }`]);
  assert.is(result.code, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout), {
    program: true, overlay: 'nix-build-cache', restores: true, module: { config: false, lib: false, pkgs: false }, check: true,
  });
});

test.run();
