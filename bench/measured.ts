// Runs one restore or save in this process and prints its report with the process's peak RSS, so
// that a benchmark can measure memory without outside tools: node measured.js restore|save JSON
import { restore, save } from '../src/index.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const [command, json] = process.argv.slice(2);
const options = JSON.parse(json ?? '{}');
const report = command === 'restore' ? await restore(options) : await save(options);
process.stdout.write(`${JSON.stringify({ report, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
