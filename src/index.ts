export { restore } from './restore.js';
export { save } from './save.js';
export { lookup } from './lookup.js';
export { appendEvent, eventOf, readStats, statsTable, type StatsOptions } from './events.js';
export { parseEvents, summarize, type CacheEvent, type NameStats } from './core/stats.js';
export type { Phase, Progress, ProgressListener } from './progress.js';
export { formatManifest, parseManifest, diffManifests, type Manifest, type ManifestDiff } from './core/manifest.js';
export { planRestore, STORE_MTIME, type RestorePlan } from './core/plan.js';
export { objectKey } from './core/key.js';
export { ArchiveError, ConfigError, NbcError, StoreError } from './core/errors.js';
export type { CacheOptions, RestoreOptions, SaveOptions } from './options.js';
export type { HashReport, Report, RestoreReport, SaveReport, StatsReport, ExplainLine, Attempt } from './report.js';
export { hashTree, type HashTreeOptions, type TreeHash } from './hash.js';
export { WorkerPool } from './pool.js';
export { listCaches, listStore, pruneCaches, pruneStore, type PruneOptions, type PruneResult, type StoreOptions, type StoreTotals } from './manage.js';
export { FileStore } from './stores/file.js';
// S3Store is reached through openStore('s3://…'): importing it here would load the AWS SDK
// (a tenth of a second) into every program that uses the library, S3 or not.
export { openStore, type S3Settings } from './stores/index.js';
export type { S3Store } from './stores/s3.js';
export type { Store, StoredBody, StoredObject } from './stores/store.js';

