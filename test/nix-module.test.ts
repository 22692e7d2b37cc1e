import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand } from './helpers.js';

// The NixOS module evaluated with real nix-instantiate over a stand-in lib (no nixpkgs here).
const MODULE = fileURLToPath(new URL('../../nix/module.nix', import.meta.url));
const EVALUATOR = fileURLToPath(new URL('../../test/nix/eval-module.nix', import.meta.url));
const test = suite('the NixOS module (services.nix-build-cache)');

async function evaluate(settings: unknown): Promise<Record<string, any>> {
  const result = await runCommand('nix-instantiate', ['--eval', '--strict', '--json', EVALUATOR, '--arg', 'module', MODULE,
    '--arg', 'settings', `builtins.fromJSON ''${JSON.stringify({ services: { 'nix-build-cache': settings } })}''`], { env: { HOME: '/tmp' } });
  assert.is(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as Record<string, any>;
}

test('a local store: the directory 2775 root:nixbld, listed (optional) in extra-sandbox-paths, no daemon', async () => {
  const config = await evaluate({ enable: true });
  assert.equal(config.nix.settings['extra-sandbox-paths'], ['/var/cache/nix-build-cache?']);
  assert.equal(config.systemd.tmpfiles.rules, ['d /var/cache/nix-build-cache 2775 root nixbld - -']);
  assert.equal(config.systemd.services, {});
});

test('the daemon: a systemd service running serve with the options, its socket directory in extra-sandbox-paths', async () => {
  const config = await evaluate({
    enable: true, daemon: { enable: true, upstream: 's3://bucket/caches', credentialsFile: '/run/keys/nbc', readOnly: true, writers: ['root', '@ci'] },
  });
  assert.equal(config.nix.settings['extra-sandbox-paths'], ['/run/nix-build-cache?']);
  assert.equal(config.systemd.tmpfiles.rules, []);
  const service = config.systemd.services['nix-build-cache'];
  assert.equal(service.wantedBy, ['multi-user.target']);
  assert.is(service.serviceConfig.ExecStart, "/nix/store/00000000000000000000000000000000-nix-build-cache/bin/nix-build-cache 'serve' "
    + "'--socket' '/run/nix-build-cache/socket' '--store' 's3://bucket/caches' '--socket-group' 'nixbld' '--disk-cache' "
    + "'/var/cache/nix-build-cache-daemon' '--max-disk' '10G' '--credentials-file' '/run/keys/nbc' '--read-only' '--writer' 'root' '--writer' '@ci'");
});

test('disabled: nothing at all', async () => {
  assert.equal(await evaluate({ enable: false }), {});
});

test.run();
