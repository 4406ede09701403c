#!/usr/bin/env node
/**
 * kill -9 during checkpoint saves, N times (default 50): the result in docs/engine.md.
 *
 *   npm run build:ts && node scripts/kill-during-save.js [--points 50] [--seed 7] [--range 2.5] [--json out.json]
 *
 * A job of 4 ranks (S=2: ranks 0 and 1 write, 2 and 3 are replicas; 20k-element extra
 * parameter, AdamW) trains 4 steps and saves after steps 1, 2 and 3. First it runs
 * uninterrupted (the reference: its checkpoints and final parameters), then, per
 * point, a job where the committer (rank 0), the other writer (rank 1), a replica
 * (rank 3) or every rank SIGKILLs itself at a seeded random moment in [0, range x the
 * reference's median save time] after the save of step 2 starts (saves of the killed
 * jobs run slower than the reference's when the machine is busy: the range is wide). Per point it checks: the
 * directory shows only complete checkpoints, `latest` names one of them, each verifies
 * (every checksum) and holds exactly what the reference saved at that step; then a new
 * job resumes from `latest` and must end with the reference's parameters bit for bit.
 * Prints one line per point and a summary; exits 1 if any point failed.
 */
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const mics = require(path.join(root, 'dist'));
const { freePort, localRankEnvironment } = require(path.join(root, 'dist', 'cli', 'bench', 'local-ranks'));
const script = path.join(root, 'test', 'fixtures', 'engine', 'train.js');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const POINTS = Number(option('points', '50'));
const SEED = Number(option('seed', '7'));
const JSON_OUT = option('json', undefined);
const RANGE = Number(option('range', '2.5'));

const base = { S: 2, A: 1, B: 4, steps: 4, seed: 11, optimizer: { type: 'adamw', lr: 0.02 }, extra: 20000, timeoutMs: 30000 };
const W = 4;
const TAGS = ['step-00000001', 'step-00000002', 'step-00000003'];

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs W ranks of train.js with `config`; resolves to [{rank, code, signal, json}]. */
async function job(config) {
  const port = await freePort();
  const runs = [];
  for (let r = 0; r < W; r++) {
    const env = {
      ...process.env,
      ...localRankEnvironment(r, W, W, port, 'kill-during-save-token-0123456789abcdef'), // rank 0 hosts the store
    };
    runs.push(
      new Promise((resolve) => {
        const child = spawn(process.execPath, [script, JSON.stringify(config)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', () => undefined);
        const timer = setTimeout(() => child.kill('SIGKILL'), 120000);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          const line = out.split('\n').find((l) => l.startsWith('RESULT '));
          resolve({ rank: r, code, signal, json: line ? JSON.parse(line.slice(7)) : undefined });
        });
      }),
    );
  }
  return Promise.all(runs);
}

async function states(dir, tag) {
  const c = await mics.Checkpoint.open(dir, { tag });
  try {
    const out = {};
    for (const s of c.index.states) out[s] = await c.readAll(s);
    return out;
  } finally {
    await c.close();
  }
}

function identical(a, b) {
  for (const [state, params] of Object.entries(b)) {
    for (const [name, values] of Object.entries(params)) {
      const x = a[state]?.[name];
      if (!x || !Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(values.buffer, values.byteOffset, values.byteLength))) return `${state}/${name} differs`;
    }
  }
  return undefined;
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-kill-'));
  const refDir = path.join(work, 'reference');
  const reference = await job({ ...base, checkpoint: { dir: refDir, saveAt: [1, 2, 3] } });
  if (reference.some((r) => r.code !== 0 || r.json?.error)) throw new Error(`the reference run failed: ${JSON.stringify(reference.map((r) => r.json?.error ?? r.code))}`);
  const saved = {};
  for (const tag of TAGS) saved[tag] = await states(refDir, tag);
  const digest = JSON.stringify(reference[0].json.digest);
  const saveMs = [...reference[0].json.saves.map((s) => s.seconds * 1000)].sort((a, b) => a - b)[1];
  console.log(`reference: 4 ranks (S=2), a save took ${saveMs.toFixed(1)} ms on rank 0 (median of 3; ${reference[0].json.saves[1].bytes} bytes); kills at [0, ${(RANGE * saveMs).toFixed(1)}] ms`);

  const random = mulberry32(SEED);
  const targets = [[0], [1], [3], 'all'];
  const results = [];
  for (let i = 0; i < POINTS; i++) {
    const delayMs = Math.round(random() * RANGE * saveMs * 10) / 10;
    const ranks = targets[i % targets.length];
    const dir = path.join(work, `point${i}`);
    const started = Date.now();
    await job({ ...base, checkpoint: { dir, saveAt: [1, 2, 3] }, killDuringSave: { at: 2, delayMs, ranks } });
    const problems = [];
    const entries = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    const latest = entries.includes('latest') ? fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim() : undefined;
    const tags = entries.filter((e) => !e.startsWith('.') && e !== 'latest');
    const hidden = entries.filter((e) => e.startsWith('.'));
    if (!TAGS.includes(latest)) problems.push(`latest is ${latest}`);
    for (const t of tags) {
      if (!TAGS.includes(t)) problems.push(`unexpected entry ${t}`);
      try {
        const c = await mics.Checkpoint.open(dir, { tag: t });
        const report = await c.verify();
        await c.close();
        if (!report.ok) problems.push(`${t} fails verify: ${JSON.stringify(report.files.filter((f) => !f.ok))}`);
        const diff = identical(await states(dir, t), saved[t]);
        if (diff) problems.push(`${t}: ${diff}`);
      } catch (err) {
        problems.push(`${t} does not open: ${err.message}`);
      }
    }
    let resumed = 'not run';
    if (TAGS.includes(latest)) {
      const r = await job({ ...base, resume: { dir } });
      if (r.some((x) => x.code !== 0 || x.json?.error)) resumed = `failed: ${JSON.stringify(r.map((x) => x.json?.error?.message ?? x.code))}`;
      else resumed = JSON.stringify(r[0].json.digest) === digest ? 'bit-identical' : 'DIFFERENT';
      if (resumed !== 'bit-identical') problems.push(`resume ${resumed}`);
    }
    // Where the save was when the kill came, from what it left.
    const moment =
      latest === TAGS[0] && !tags.includes(TAGS[1])
        ? hidden.some((h) => h.startsWith('.tmp-step-00000002'))
          ? 'before the commit (temporary directory left)'
          : 'before the commit (nothing left: not begun, or the committer cleaned up)'
        : latest === TAGS[0]
          ? 'after the rename, before latest moved'
          : 'after the commit';
    const line = { point: i, delayMs, ranks: ranks === 'all' ? 'all' : ranks.join(','), latest, visible: tags.sort(), moment, resumed, ok: problems.length === 0, problems, seconds: (Date.now() - started) / 1000 };
    results.push(line);
    console.log(`${String(i).padStart(2)} kill ${line.ranks.padEnd(3)} at ${String(delayMs).padStart(5)} ms: latest ${latest}, ${moment}; resume ${resumed}${problems.length ? `  PROBLEMS: ${problems.join('; ')}` : ''}`);
  }
  const failed = results.filter((r) => !r.ok);
  const byMoment = {};
  for (const r of results) byMoment[r.moment] = (byMoment[r.moment] ?? 0) + 1;
  const byLatest = {};
  for (const r of results) byLatest[r.latest] = (byLatest[r.latest] ?? 0) + 1;
  console.log(`\n${results.length} points, ${results.length - failed.length} passed, ${failed.length} failed`);
  console.log(`latest after the kill: ${JSON.stringify(byLatest)}`);
  console.log(`moment of the kill: ${JSON.stringify(byMoment)}`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ seed: SEED, range: RANGE, saveMs, results }, null, 1));
  fs.rmSync(work, { recursive: true, force: true });
  process.exitCode = failed.length === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
