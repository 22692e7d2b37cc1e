import { cacheKey, whyMissing } from './core/key.js';
import { ConfigError, describeError } from './core/errors.js';
import { keysOfCache } from './manage.js';
import { resolveOptions, type RestoreOptions } from './options.js';
import type { Attempt, RestoreReport } from './report.js';
import { openStore, type Store } from './stores/index.js';

/**
 * Says whether restore would find a cache (the name, then each fallback) without downloading it
 * or touching the tree or the state dir: actions/cache's lookup-only. Lists the store by name, so
 * an archive that is there but corrupt still counts as a hit here. Problems are warnings and a
 * miss, as in restore; only invalid options throw, or anything with `strict`.
 */
export async function lookup(options: RestoreOptions): Promise<RestoreReport> {
  const config = resolveOptions(options);
  const started = Date.now();
  const report: RestoreReport = {
    command: 'restore', outcome: 'miss', result: 'miss', matchedKey: null, lookupOnly: true, cacheName: config.cacheName,
    root: config.root ?? process.cwd(), attempts: [], sources: { files: 0, bytes: 0, unchanged: 0, changed: 0, added: 0, removed: 0 },
    artifacts: { restored: 0, skipped: 0, bytes: 0 }, warnings: [], seconds: 0,
  };
  let store: Store | undefined;
  try {
    store = await openStore(config.store, config.s3);
    for (const name of [config.cacheName, ...config.fallbacks]) {
      const key = cacheKey(name, config);
      const keys = await keysOfCache(store, name, config.signal);
      if (keys.includes(key)) {
        report.attempts.push({ name, key, result: 'hit' });
        Object.assign(report, { outcome: 'hit', result: name === config.cacheName ? 'hit' : 'fallback', matchedKey: key });
        break;
      }
      const reason = whyMissing(key, keys) ?? await store.whyEmpty?.();
      report.attempts.push(reason === undefined ? { name, key, result: 'missing' } : { name, key, result: 'missing', reason } satisfies Attempt);
    }
  } catch (error) {
    if (error instanceof ConfigError || config.strict) throw error;
    report.outcome = 'error';
    const message = `lookup failed: ${describeError(error)}`;
    report.warnings.push(message);
    config.onWarning?.(message);
  } finally {
    if (typeof config.store === 'string') store?.close();
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}
