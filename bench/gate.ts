// Question: does this commit keep the performance targets? Runs every benchmark (quick with
// --quick), writes bench/results.json (each figure with its baseline and ratio), prints the table,
// and exits non-zero when a ratio falls below its threshold. Usage: node dist/bench/gate.js [--quick]
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildBench } from './build.js';
import { printTable, type Result } from './common.js';
import { hashBench } from './hash.js';
import { memoryBench } from './memory.js';
import { roundTripBench } from './roundtrip.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean' } } });
const quick = values.quick === true;
const results: Result[] = [];
for (const bench of [hashBench, buildBench, roundTripBench, memoryBench]) results.push(...await bench(quick));
const path = fileURLToPath(new URL('../../bench/results.json', import.meta.url));
await writeFile(path, `${JSON.stringify({ mode: quick ? 'quick' : 'full', date: new Date().toISOString(), results }, null, 2)}\n`);
printTable(results);
const below = results.filter((r) => r.threshold !== undefined && r.ratio! < r.threshold);
console.log(`\n${results.length} figures, ${below.length} below threshold; written to bench/results.json`);
if (below.length > 0) process.exitCode = 1;
