import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand } from './helpers.js';

// The wrapper's arguments, evaluated by real nix-instantiate: a misspelled argument must fail the
// evaluation naming the valid one, instead of being swallowed by the wrapper's `...`.
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const test = suite("the Nix wrapper's arguments");

const VALID = '{ cache-name = "app/pr-1"; master-cache = "app/main"; cache-dirs = [ "obj" ]; store = "/tmp/nbc"; cli = "nbc"; }';

/** Wraps a stand-in derivation with the valid arguments, `change` laid over them; prints its preConfigure. */
function wrap(change: string) {
  return runCommand('nix-instantiate', ['--eval', '--json', '-E', `let pkgs = import ${REPO}/test/nix/pkgs.nix { }; in
    ((import ${REPO}/nix/default.nix ({ inherit pkgs; } // builtins.removeAttrs ${VALID} [ "cache-dirs" "store" ] // ${change}))
    (pkgs.stdenv.mkDerivation { name = "demo"; })).preConfigure`], { env: { HOME: '/tmp' } });
}

async function rejects(change: string, message: string): Promise<void> {
  const result = await wrap(change);
  assert.is.not(result.code, 0, `accepted ${change}`);
  assert.is(result.stderr.split('\n')[0], `error: ${message}`);
}

test('the valid arguments wrap the derivation', async () => {
  const result = await wrap('{ cache-dirs = [ "obj" ]; store = "/tmp/nbc"; }');
  assert.is(result.code, 0, result.stderr);
  assert.match(JSON.parse(result.stdout), "nbc restore '--store' '/tmp/nbc' '--cache-name' 'app/pr-1' '--cache-dir' 'obj'");
});

test('a misspelled argument names the nearest valid one', async () => {
  for (const [wrong, right] of [['cache-dir', 'cache-dirs'], ['cacheDirs', 'cache-dirs'], ['cache_dirs', 'cache-dirs'],
    ['s3bucket', 's3-bucket'], ['S3_Bucket', 's3-bucket'], ['stor', 'store'], ['toolchainSalt', 'toolchain-salt'], ['saveOnFailure', 'save-on-failure']]) {
    const other = wrong.startsWith('s3') || wrong === 'stor' ? 'cache-dirs = [ "obj" ];' : 'store = "/tmp/nbc";';
    const value = wrong.startsWith('cache') ? '[ "obj" ]' : '"x"';
    await rejects(`{ ${other} ${wrong} = ${value}; }`, `nix-build-cache: unknown argument '${wrong}'; did you mean '${right}'?`);
  }
});

test('an argument like none lists them all', async () => {
  const result = await wrap('{ cache-dirs = [ "obj" ]; store = "/tmp/nbc"; colour = true; }');
  assert.match(result.stderr, "unknown argument 'colour'; the arguments are: aws-credentials-file, aws-key, aws-secret, cache-dirs, ");
});

test('a required argument left out is named', async () => {
  await rejects('{ store = "/tmp/nbc"; }', 'nix-build-cache: cache-dirs is required');
});

test.run();
