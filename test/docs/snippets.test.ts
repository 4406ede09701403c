/**
 * Every code snippet of the README and docs/*.md that is meant to run, runs as written.
 *
 * A fenced block whose language is sh, bash, js or ts is a snippet; blocks without a language
 * (output, layouts) or in another one (json) are not code to run. A snippet that cannot run
 * here (needs root, a GPU, several machines, your own train.js, or minutes) carries a marker on
 * the line before its fence, with the reason: `<!-- snippet: skip REASON -->`.
 *
 * How they run, as a user would in a project that installed mics: in a scratch directory
 * whose node_modules/mics is this checkout (with its bins, and tsx for TypeScript), `examples/`
 * and `scripts/` linked in, and `docs/` empty so that figures a snippet writes land there
 * (and must equal the committed ones). sh runs under bash -e with `npx` running the installed
 * bin; js and ts run with node (ES modules, so top-level await works; CommonJS when the
 * snippet uses require). mics-launch picks a free port (MICS_MASTER_PORT=0).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findTsxLoader } from '../../lib/cli/typescript';
import { repoRoot } from '../helpers/run-node';

const RUNNABLE = new Set(['sh', 'bash', 'js', 'ts']);

interface Snippet {
  file: string;
  line: number;
  lang: string;
  code: string;
  skip: string | undefined;
}

/** The fenced blocks of a Markdown file (``` fences), with the skip marker before each. */
function snippetsOf(file: string, text: string): Snippet[] {
  const lines = text.split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const open = /^```\s*(\S*)/.exec(lines[i]);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end += 1;
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === '') before -= 1;
    const marker = before >= 0 ? /^<!-- snippet: skip (.+?) -->$/.exec(lines[before].trim()) : null;
    out.push({ file, line: i + 1, lang: open[1].toLowerCase(), code: lines.slice(i + 1, end).join('\n'), skip: marker?.[1] });
    i = end;
  }
  return out;
}

const docs = ['README.md', ...fs.readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const all = docs.flatMap((file) => snippetsOf(file, fs.readFileSync(path.join(repoRoot, file), 'utf8')));
const runnable = all.filter((s) => RUNNABLE.has(s.lang));
const toRun = runnable.filter((s) => s.skip === undefined);

let work: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-snippets-'));
  const modules = path.join(work, 'node_modules');
  fs.mkdirSync(path.join(modules, '.bin'), { recursive: true });
  fs.symlinkSync(repoRoot, path.join(modules, 'mics'));
  fs.symlinkSync(path.join(repoRoot, 'node_modules', 'tsx'), path.join(modules, 'tsx'));
  for (const bin of ['mics', 'mics-launch']) fs.symlinkSync(path.join(repoRoot, 'dist', 'cli', `${bin}.js`), path.join(modules, '.bin', bin));
  for (const dir of ['examples', 'scripts']) fs.symlinkSync(path.join(repoRoot, dir), path.join(work, dir));
  fs.mkdirSync(path.join(work, 'docs', 'scaling'), { recursive: true });
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Files a snippet wrote under the scratch docs/, as repository paths. */
function writtenDocs(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(work, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else out.push(rel);
    }
  };
  walk('docs');
  return out;
}

function runSnippet(s: Snippet): { status: number | null; output: string } {
  const env = { ...process.env, PATH: `${path.join(work, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH}`, MICS_MASTER_PORT: '0' };
  if (s.lang === 'sh' || s.lang === 'bash') {
    // `npx X` runs the installed bin X, as npx does in a project that has it (never the registry).
    const r = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', `npx() { "$@"; }\n${s.code}`], { cwd: work, env, encoding: 'utf8', timeout: 90000 });
    return { status: r.status, output: `${r.stdout}\n${r.stderr}${r.error ? `\n${r.error.message}` : ''}` };
  }
  const commonJs = /\brequire\(/.test(s.code);
  const ext = s.lang === 'ts' ? (commonJs ? 'cts' : 'mts') : commonJs ? 'cjs' : 'mjs';
  const file = path.join(work, `snippet-${path.basename(s.file, '.md')}-${s.line}.${ext}`);
  fs.writeFileSync(file, `${s.code}\n`);
  const loader = s.lang === 'ts' ? ['--import', findTsxLoader(file) as string] : [];
  const r = spawnSync(process.execPath, [...loader, file], { cwd: work, env, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, output: `${r.stdout}\n${r.stderr}${r.error ? `\n${r.error.message}` : ''}` };
}

describe('README and docs snippets', () => {
  it('are found: each runnable one either runs below or says why not', () => {
    expect(toRun.length).toBeGreaterThan(0);
    for (const s of runnable) if (s.skip !== undefined) expect(s.skip.length).toBeGreaterThan(3);
  });

  it.each(toRun.map((s) => [`${s.file}:${s.line} (${s.lang})`, s] as const))('%s runs', (_name, s) => {
    const before = new Set(writtenDocs());
    const r = runSnippet(s);
    if (r.status !== 0) throw new Error(`${s.file}:${s.line} exited ${r.status}:\n${s.code}\n--- output ---\n${r.output}`);
    // A figure the docs show must be what the snippet that makes it writes.
    for (const written of writtenDocs().filter((f) => !before.has(f))) {
      const committed = path.join(repoRoot, written);
      if (fs.existsSync(committed)) expect({ file: written, same: fs.readFileSync(path.join(work, written)).equals(fs.readFileSync(committed)) }).toEqual({ file: written, same: true });
    }
  });
});
