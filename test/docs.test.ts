import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { VERSION } from '../src/version.js';
import { runCli } from './helpers.js';

const test = suite('docs/cli.md');
const DOC = new URL('../../docs/cli.md', import.meta.url);

/** The doc's block for `args`, as `--help` prints it (the version left out: it changes with every release). */
async function expectBlock(doc: string, args: string[]): Promise<void> {
  const { code, stdout } = await runCli(args, { cwd: process.cwd() });
  assert.is(code, 0);
  const help = stdout.trimEnd().replace(`nix-build-cache ${VERSION}:`, 'nix-build-cache <version>:');
  const block = `### nix-build-cache ${args.join(' ').replace(/ --help$/, '')}\n\n\`\`\`text\n${help}\n\`\`\`\n`;
  assert.ok(doc.includes(block), `docs/cli.md lacks or differs from this block; paste it in:\n${block}`);
}

test('embeds the exact --help of the tool and of every command it lists', async () => {
  const doc = readFileSync(DOC, 'utf8');
  await expectBlock(doc, ['--help']);
  const top = (await runCli(['--help'], { cwd: process.cwd() })).stdout;
  const commands = [...top.split('Commands:\n')[1]!.split('\n\n')[0]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!);
  assert.ok(commands.length >= 8, commands.join(' '));
  for (const command of commands) await expectBlock(doc, [command, '--help']);
  const sections = [...doc.matchAll(/^### nix-build-cache (\S+)$/gm)].map((m) => m[1]);
  assert.equal(sections, ['--help', ...commands], 'no section for a command that is gone');
});

test.run();
