/** Runs the compiled launcher as a real process and reads what its ranks printed. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..', '..');
export const launcher = path.join(repoRoot, 'dist', 'cli', 'mics-launch.js');
export const fixtures = path.join(repoRoot, 'test', 'fixtures', 'launch');
export const worker = path.join(fixtures, 'worker.js');

/** How a launcher process ended and what it printed. */
export interface LaunchResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running launcher. */
export interface Launched {
  child: ChildProcess;
  done: Promise<LaunchResult>;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
}

/** Fails the test early with a clear reason when the launcher was not compiled. */
export function requireBuilt(): void {
  if (!fs.existsSync(launcher)) {
    throw new Error(`${launcher} is missing: run \`npx tsc -p tsconfig.build.json\` (npm test does) before these tests`);
  }
}

/** Starts `node dist/cli/mics-launch.js ...args`; kills it after `timeoutMs` so a hang fails the test instead of jest. */
export function launch(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30000): Launched {
  const child = spawn(process.execPath, [launcher, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<LaunchResult>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  return { child, done, stdout: () => out, stderr: () => err };
}

/** Runs the launcher to its end. */
export function runLaunch(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30000): Promise<LaunchResult> {
  return launch(args, env, timeoutMs).done;
}

/** The environment each rank reported ("[rank N] ENV {...}" lines, "[node K] [rank N] ..." from a hostfile start), sorted by RANK. */
export function rankEnvs(stdout: string): Record<string, string | boolean | string[] | undefined>[] {
  const envs: Record<string, string | boolean | string[] | undefined>[] = [];
  for (const line of stdout.split('\n')) {
    // A --hostfile start tags each line with the node it came from first.
    const m = /^(?:\[node \d+\] )?\[rank (\d+)\] ENV (.*)$/.exec(line);
    if (!m) continue;
    const env = JSON.parse(m[2]) as Record<string, string | boolean | string[] | undefined>;
    expect(env.RANK).toBe(m[1]); // the prefix names the rank that printed
    envs.push(env);
  }
  return envs.sort((a, b) => Number(a.RANK) - Number(b.RANK));
}

/** A TCP port that was free a moment ago (tests never use the shared default 29500). */
export { freePort } from '../../../lib/cli/bench/local-ranks';

const tempDirs: string[] = [];
// Registered when a test file imports the harness: its temporary directories go with the file.
afterAll(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after the test file's last test. */
export function tempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mics-launch-test-${tag}-`));
  tempDirs.push(dir);
  return dir;
}

/** Resolves once `predicate` holds (polled), or rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** pid files written by worker.js with FIX_PID_DIR. */
export interface PidInfo {
  rank: number;
  pid: number;
  childPid?: number;
}

export function readPids(dir: string): PidInfo[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^rank\d+\.json$/.test(f))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as PidInfo)
    .sort((a, b) => a.rank - b.rank);
}

/** Live (non-zombie) processes whose pid or process group is one of `ids`, from /proc. */
export function survivors(ids: number[]): string[] {
  const wanted = new Set(ids);
  const found: string[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const pgid = Number(rest[2]);
    if (state === 'Z') continue;
    if (wanted.has(Number(name)) || wanted.has(pgid)) found.push(`pid ${name} (pgid ${pgid}, state ${state})`);
  }
  return found;
}
