/**
 * The package users install, tested as they get it: `npm pack` (which builds the linux-x64
 * prebuild through `prepack`), then the file list, then an install of that tarball into a fresh
 * app with no compiler on PATH and a collective run with the installed `mics-launch`.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nodeTypeStripping } from '../../lib/cli/typescript';
import { repoRoot } from '../helpers/run-node';

const npmCli = path.join(path.dirname(fs.realpathSync(process.execPath)), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
const npmCommand = fs.existsSync(npmCli) ? [process.execPath, npmCli] : ['npm'];

function run(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }): SpawnSyncReturns<string> {
  const [command, ...rest] = args;
  return spawnSync(command, rest, { cwd: options.cwd, env: options.env ?? process.env, encoding: 'utf8', timeout: options.timeout ?? 120000 });
}

function npm(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }): SpawnSyncReturns<string> {
  return run([...npmCommand, ...args], options);
}

const failed = (r: SpawnSyncReturns<string>): string => `exit ${r.status} ${r.error?.message ?? ''}\n${r.stdout}\n${r.stderr}`;

/** Fails with everything the command printed when it did not exit 0. */
function expectOk(r: SpawnSyncReturns<string>): void {
  if (r.status !== 0) throw new Error(`command failed: ${failed(r)}`);
}

const prebuild = `prebuilds/${process.platform}-${process.arch}/mics.glibc.node`;
let work: string;
let tarball: string;
let files: string[];

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-package-test-'));
  // prepack builds (or finds up to date) the prebuild; prepare compiles lib/ to dist/.
  const packed = npm(['pack', '--json', '--pack-destination', work], { cwd: repoRoot, timeout: 300000 });
  if (packed.status !== 0) throw new Error(`npm pack failed: ${failed(packed)}`);
  const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  tarball = path.join(work, info[0].filename);
  files = info[0].files.map((f) => f.path).sort();
}, 330000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('npm pack: what the tarball holds', () => {
  it('the docs, LICENSE (Apache-2.0 text), README, the compiled library with types, the sources to compile from', () => {
    const docs = fs.readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md'));
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) expect(files).toContain(`docs/${doc}`);
    for (const f of ['README.md', 'LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/mics.js', 'dist/cli/mics-launch.js']) {
      expect(files).toContain(f);
    }
    expect(fs.readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004[\s\S]*END OF TERMS AND CONDITIONS/);
    for (const f of ['binding.gyp', 'CMakeLists.txt', 'scripts/install.js', 'csrc/napi/addon.cc']) expect(files).toContain(f);
  });

  it('the linux-x64 prebuild', () => {
    expect(files).toContain(prebuild);
  });

  it('the scripts users run, and none of the internal ones', () => {
    const scripts = files.filter((f) => f.startsWith('scripts/'));
    expect(scripts).toEqual([
      'scripts/bench-hierarchical.sh',
      'scripts/bench-host-kernels.js',
      'scripts/bench-step-summary.js',
      'scripts/bench-step.sh',
      'scripts/emulated-cluster.sh',
      'scripts/install.js',
    ]);
  });

  it('no source maps (their sources are not shipped), tests, CI or build configuration', () => {
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => /^(test|lib|\.ci|\.github|build|build-cmake|node_modules)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /^(tsconfig.*|jest.*|package-lock\.json|\.gitignore)$/.test(f))).toEqual([]);
  });

  it('every relative link of the shipped README and docs leads to a shipped file', () => {
    const broken: string[] = [];
    for (const doc of files.filter((f) => f.endsWith('.md'))) {
      const text = fs.readFileSync(path.join(repoRoot, doc), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1].split('#')[0];
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(doc), target));
        if (!files.includes(resolved) && !files.some((f) => f.startsWith(`${resolved}/`))) broken.push(`${doc} -> ${m[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('npm install of the tarball into a fresh app, no compiler on PATH', () => {
  let app: string;
  let env: NodeJS.ProcessEnv;
  let installed: SpawnSyncReturns<string>;

  beforeAll(() => {
    app = path.join(work, 'app');
    fs.mkdirSync(app);
    // npm 11 runs a dependency's install script only when the project allows it (allowScripts);
    // allowed here so that the script's decision is seen (--foreground-scripts shows its output).
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, allowScripts: { mics: true } }));
    // PATH: node and sh alone (no cc, c++, make, python3): a compile would fail.
    const bin = path.join(work, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
    env = { HOME: process.env.HOME, PATH: bin, TMPDIR: os.tmpdir(), npm_config_cache: process.env.npm_config_cache };
    for (const tool of ['cc', 'c++', 'g++', 'make', 'python3']) {
      expect(spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status).not.toBe(0);
    }
    // Cached dependencies first (the suite must not need the network when the cache has them).
    installed = npm(['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], {
      cwd: app,
      env,
      timeout: 240000,
    });
  }, 260000);

  it('installs from the prebuild: nothing compiled, and the install script says so', () => {
    expectOk(installed);
    const using = `mics: using ${prebuild} (${process.platform}-${process.arch}, Node ${process.version}): nothing to compile`;
    // Where npm ran the install script (allowed, or an npm without script approval), it printed this;
    // run by hand it prints the same.
    if (/scripts\/install\.js/.test(installed.stdout)) expect(`${installed.stdout}${installed.stderr}`).toContain(using);
    const pkg = path.join(app, 'node_modules', 'mics');
    const byHand = run(['node', path.join(pkg, 'scripts', 'install.js')], { cwd: pkg, env });
    expect({ status: byHand.status, stderr: byHand.stderr.trim() }).toEqual({ status: 0, stderr: using });
    expect(fs.existsSync(path.join(pkg, prebuild))).toBe(true);
    expect(fs.existsSync(path.join(pkg, 'build'))).toBe(false);
    // tsx (and esbuild under it) is an optional peer: not installed with mics.
    expect(fs.existsSync(path.join(app, 'node_modules', 'tsx'))).toBe(false);
    expect(fs.existsSync(path.join(app, 'node_modules', 'esbuild'))).toBe(false);
  });

  it('runs a collective on 2 ranks with the installed mics-launch', () => {
    fs.writeFileSync(
      path.join(app, 'allreduce.js'),
      [
        "const { init } = require('mics');",
        'init({ backend: "cpu" }).then(async (world) => {',
        '  const x = new Float64Array([world.rank + 1]);',
        "  await world.allReduce(x, { op: 'sum' });",
        '  console.log(`RESULT ${JSON.stringify({ rank: world.rank, sum: x[0] })}`);',
        '  world.destroy();',
        '});',
      ].join('\n'),
    );
    const r = run([path.join(app, 'node_modules', '.bin', 'mics-launch'), '--nproc-per-node', '2', 'allreduce.js'], { cwd: app, env, timeout: 60000 });
    expectOk(r);
    const results = r.stdout
      .split('\n')
      .map((l) => /RESULT (.*)$/.exec(l)?.[1])
      .filter((l): l is string => l !== undefined)
      .map((l) => JSON.parse(l) as { rank: number; sum: number });
    expect(results.sort((a, b) => a.rank - b.rank)).toEqual([
      { rank: 0, sum: 3 },
      { rank: 1, sum: 3 },
    ]);
    // ... with the prebuilt addon, as the installed `mics info` reports.
    const info = run([path.join(app, 'node_modules', '.bin', 'mics'), 'info', '--json'], { cwd: app, env });
    expectOk(info);
    expect((JSON.parse(info.stdout) as { addonFile: string }).addonFile).toBe(path.join(fs.realpathSync(app), 'node_modules', 'mics', prebuild));
  });

  it('a .ts script without tsx: Node strips the types where it can, else a message saying what to install', () => {
    fs.writeFileSync(path.join(app, 'hello.ts'), "const greeting: string = 'hello from TypeScript';\nconsole.log(greeting);\n");
    const r = run([path.join(app, 'node_modules', '.bin', 'mics-launch'), '--nproc-per-node', '1', 'hello.ts'], { cwd: app, env, timeout: 60000 });
    if (nodeTypeStripping(process.version) === 'none') {
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("'hello.ts' is TypeScript and tsx is not installed");
      expect(r.stderr).toContain('npm install --save-dev tsx');
    } else {
      expectOk(r);
      expect(r.stdout).toContain('hello from TypeScript');
    }
  });

  it('without a matching prebuild the install script says it compiles, what that needs, and how it failed', () => {
    // The installed package less its prebuild, and npm's own node-gyp as npm hands it to install scripts.
    const copy = path.join(work, 'no-prebuild', 'mics');
    fs.cpSync(path.join(app, 'node_modules', 'mics'), copy, { recursive: true, dereference: true });
    fs.rmSync(path.join(copy, 'prebuilds'), { recursive: true });
    fs.cpSync(path.join(app, 'node_modules', 'node-gyp-build'), path.join(work, 'no-prebuild', 'node-gyp-build'), { recursive: true });
    const nodeGyp = path.join(path.dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    const r = run(['node', path.join(copy, 'scripts', 'install.js')], {
      cwd: copy,
      env: { ...env, ...(fs.existsSync(nodeGyp) ? { npm_config_node_gyp: nodeGyp } : {}) },
      timeout: 120000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`mics: no prebuilt addon for ${process.platform}-${process.arch}, Node ${process.version} in prebuilds/: compiling the addon from csrc/ with node-gyp`);
    expect(r.stderr).toContain('mics: this needs a C++17 compiler, make and python3, and takes 1-2 minutes on 2 cores');
    expect(r.stderr).toMatch(/mics: compiling failed \(.*\): install g\+\+ \(or clang\+\+\), make and python3 .* and run `npm rebuild mics`/);
  });

  it("mics-launch --help points to docs/launch.md, which is installed", () => {
    const r = run([path.join(app, 'node_modules', '.bin', 'mics-launch'), '--help'], { cwd: app, env });
    expect(r.stdout).toContain('docs/launch.md');
    expect(fs.existsSync(path.join(app, 'node_modules', 'mics', 'docs', 'launch.md'))).toBe(true);
  });
});
