/**
 * TensorFlow.js is an optional peer dependency: `require('mics')` never loads it, and
 * `require('mics/tfjs')` without it installed fails at once saying what to install.
 * "Without it" is a real installation: the package (package.json, dist, the built
 * addon) under a temporary node_modules next to every dependency of this checkout
 * except @tensorflow/*.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../helpers/run-node';

function run(cwd: string, code: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', code], { cwd, encoding: 'utf8', timeout: 60000, env: { ...process.env, NODE_PATH: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Prints what a require did: ok, or the error's class, code and message; and whether tfjs was loaded.
const probe = (request: string): string => `
  let outcome;
  try { require(${JSON.stringify(request)}); outcome = { ok: true }; }
  catch (err) { outcome = { ok: false, name: err.name, code: err.code, message: err.message }; }
  outcome.tfjsLoaded = Object.keys(require.cache).some((f) => f.includes('@tensorflow'));
  console.log(JSON.stringify(outcome));`;

describe('where TensorFlow.js is not installed', () => {
  let root: string;

  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-no-tfjs-'));
    const pkg = path.join(root, 'node_modules', 'mics');
    fs.mkdirSync(path.join(pkg, 'build', 'Release'), { recursive: true });
    fs.copyFileSync(path.join(repoRoot, 'package.json'), path.join(pkg, 'package.json'));
    fs.cpSync(path.join(repoRoot, 'dist'), path.join(pkg, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(repoRoot, 'build', 'Release', 'mics.node'), path.join(pkg, 'build', 'Release', 'mics.node'));
    for (const entry of fs.readdirSync(path.join(repoRoot, 'node_modules'))) {
      if (entry === '@tensorflow' || entry.startsWith('.')) continue;
      fs.symlinkSync(path.join(repoRoot, 'node_modules', entry), path.join(root, 'node_modules', entry));
    }
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it("require('mics') works", () => {
    const r = run(root, `${probe('mics')}`);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, tfjsLoaded: false });
  });

  it("require('mics/tfjs') fails with MICS_UNAVAILABLE saying to npm install @tensorflow/tfjs", () => {
    const r = run(root, probe('mics/tfjs'));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false,
      name: 'MicsError',
      code: 'MICS_UNAVAILABLE',
      message: expect.stringContaining("mics/tfjs needs TensorFlow.js, which is not installed here: install it with 'npm install @tensorflow/tfjs'"),
      tfjsLoaded: false,
    });
  });
});

describe('where TensorFlow.js is installed (this checkout)', () => {
  it("require('mics') still does not load it; require('mics/tfjs') does, through the package's exports", () => {
    expect(JSON.parse(run(repoRoot, probe('mics')).stdout)).toEqual({ ok: true, tfjsLoaded: false });
    expect(JSON.parse(run(repoRoot, probe('mics/tfjs')).stdout)).toEqual({ ok: true, tfjsLoaded: true });
  });
});
