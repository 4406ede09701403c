#!/usr/bin/env node
/**
 * Checkpoint save and load throughput (docs/benchmarks.md, "Checkpoints").
 *
 *   npm run build:ts && node scripts/bench-checkpoint.js [--params 90000000] [--repeats 3] [--dir /tmp] [--json out.json]
 *
 * A model of --params fp32 parameters (default 90M: with AdamW's two states, 1.08 GB of
 * model state) in 8 units, on 4 local ranks. Per repeat, each a fresh job:
 *   save        W=4, S=4: every rank writes its quarter (engine.save: write, fsync, commit)
 *   raw write   the same ranks write the same number of bytes from memory into the same
 *               directory with fs.promises + fsync (the disk's speed for this pattern)
 *   cp + sync   `cp` of the checkpoint's files to another directory, then `sync`
 *   load        W=4, S=4 (same layout): page cache of the checkpoint dropped first
 *   load S=2    W=4, S=2 (resharded: each rank reads half of the model), cache dropped
 *   raw read    4 parallel `dd` reads of the shard files to /dev/null, cache dropped
 * The page cache of a file is dropped with `dd iflag=nocache count=0` (posix_fadvise
 * DONTNEED; the files are fsynced, so it takes); `fincore` confirms it.
 * GB/s = bytes of model state (or bytes read) / seconds of the slowest rank, GB = 1e9.
 */
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { freePort, localRankEnvironment } = require(path.join(root, 'dist', 'cli', 'bench', 'local-ranks'));

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

// ------------------------------------------------------------------ one rank
async function rank() {
  const mics = require(path.join(root, 'dist'));
  const cfg = JSON.parse(process.env.BENCH_CONFIG);
  const world = await mics.init({ backend: 'cpu', timeoutMs: 600000 });
  const groups = await mics.createGroups(world, { partitionSize: cfg.S });
  const per = Math.ceil(cfg.params / 8);
  const parameters = Array.from({ length: 8 }, (_, i) => ({ name: `layer${i}.weight`, shape: [Math.min(per, cfg.params - i * per)], unit: `layer${i}`, init: { uniform: { low: -1, high: 1 } } }));
  const engine = await mics.createEngine(groups, { parameters, optimizer: { type: 'adamw', lr: 1e-3 }, init: { seed: 1 } });
  const out = { rank: world.rank };
  if (cfg.phase === 'save') {
    await world.barrier();
    out.save = await engine.save(cfg.dir, { tag: 'bench' });
    // The same bytes, raw: written from memory with fsync by the same writers, at once.
    const bytes = out.save.bytesWritten;
    await world.barrier();
    const t = performance.now();
    if (bytes > 0) {
      const buffer = Buffer.alloc(Math.min(bytes, 64 * 1024 * 1024), 1);
      const handle = await fs.promises.open(path.join(cfg.dir, `raw-${world.rank}.bin`), 'w');
      for (let done = 0; done < bytes; ) {
        const n = Math.min(buffer.length, bytes - done);
        await handle.write(buffer, 0, n, done);
        done += n;
      }
      await handle.sync();
      await handle.close();
    }
    out.rawWriteSeconds = (performance.now() - t) / 1000;
    await world.barrier();
  } else {
    await world.barrier();
    out.load = await engine.load(cfg.dir, { tag: 'bench' });
    await world.barrier();
  }
  engine.destroy();
  mics.destroyGroups(groups);
  world.destroy();
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

// ------------------------------------------------------------------ driver
async function job(config) {
  const port = await freePort();
  const W = 4;
  return Promise.all(
    Array.from(
      { length: W },
      (_, r) =>
        new Promise((resolve, reject) => {
          const env = {
            ...process.env,
            BENCH_RANK: '1',
            BENCH_CONFIG: JSON.stringify(config),
            ...localRankEnvironment(r, W, W, port, 'bench-checkpoint-token-0123456789abcdef'), // rank 0 hosts the store
          };
          const child = spawn(process.execPath, ['--max-old-space-size=8192', __filename], { env, stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout.on('data', (d) => (out += d));
          child.on('close', (code) => {
            const line = out.split('\n').find((l) => l.startsWith('RESULT '));
            if (code !== 0 || !line) reject(new Error(`rank ${r} exited ${code}: ${out.slice(-500)}`));
            else resolve(JSON.parse(line.slice(7)));
          });
        }),
    ),
  );
}

function shardFiles(dir) {
  const at = path.join(dir, 'bench');
  return fs
    .readdirSync(at)
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => path.join(at, f));
}

/** Drops the page cache of `files` (fsynced files: DONTNEED takes) and returns the bytes still cached. */
function dropCache(files) {
  execFileSync('sync');
  for (const f of files) execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
  let resident = 0;
  for (const f of files) {
    const line = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', f], { encoding: 'utf8' }).trim();
    resident += Number(line);
  }
  return resident;
}

function timed(fn) {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function driver() {
  const params = Number(option('params', '90000000'));
  const repeats = Number(option('repeats', '3'));
  const base = option('dir', os.tmpdir());
  const jsonOut = option('json', undefined);
  const stateBytes = params * 12;
  console.log(`model: ${params} fp32 parameters, AdamW: ${(stateBytes / 1e9).toFixed(3)} GB of model state (master, exp_avg, exp_avg_sq); 4 ranks; ${os.cpus().length} cores; ${base}`);
  const rows = { save: [], rawWrite: [], cp: [], load: [], loadResharded: [], rawRead: [] };
  const extra = { fileBytes: 0, residentBeforeLoads: [] };
  for (let rep = 0; rep < repeats; rep++) {
    const dir = fs.mkdtempSync(path.join(base, 'mics-bench-ckpt-'));
    const copy = `${dir}-copy`;
    try {
      const saved = await job({ phase: 'save', S: 4, params, dir });
      const files = shardFiles(dir);
      const fileBytes = files.reduce((s, f) => s + fs.statSync(f).size, 0);
      extra.fileBytes = fileBytes;
      rows.save.push({
        seconds: Math.max(...saved.map((r) => r.save.seconds)),
        bytes: fileBytes,
        writeSeconds: Math.max(...saved.map((r) => r.save.writeSeconds)),
        snapshotSeconds: Math.max(...saved.map((r) => r.save.snapshotSeconds)),
      });
      rows.rawWrite.push({ seconds: Math.max(...saved.map((r) => r.rawWriteSeconds)), bytes: fileBytes });
      for (let r = 0; r < 4; r++) fs.rmSync(path.join(dir, `raw-${r}.bin`), { force: true });

      fs.mkdirSync(copy);
      dropCache(files);
      rows.cp.push({ seconds: timed(() => execFileSync('sh', ['-c', `cp ${files.join(' ')} ${copy}/ && sync`])), bytes: fileBytes });
      fs.rmSync(copy, { recursive: true, force: true });

      extra.residentBeforeLoads.push(dropCache(files));
      const loaded = await job({ phase: 'load', S: 4, params, dir });
      rows.load.push({ seconds: Math.max(...loaded.map((r) => r.load.seconds)), bytes: loaded.reduce((s, r) => s + r.load.bytesRead, 0), resharded: loaded[0].load.resharded });

      extra.residentBeforeLoads.push(dropCache(files));
      const resharded = await job({ phase: 'load', S: 2, params, dir });
      rows.loadResharded.push({ seconds: Math.max(...resharded.map((r) => r.load.seconds)), bytes: resharded.reduce((s, r) => s + r.load.bytesRead, 0), resharded: resharded[0].load.resharded });

      extra.residentBeforeLoads.push(dropCache(files));
      const script = files.map((f) => `dd if=${f} of=/dev/null bs=16M status=none &`).join(' ') + ' wait';
      rows.rawRead.push({ seconds: timed(() => execFileSync('sh', ['-c', script])), bytes: fileBytes });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(copy, { recursive: true, force: true });
    }
    console.log(`repeat ${rep + 1}/${repeats} done`);
  }
  const labels = {
    save: 'save (W=4, S=4): write + fsync + commit',
    rawWrite: 'raw write + fsync of the same bytes, 4 writers',
    cp: 'cp of the shard files + sync',
    load: 'load, same layout (W=4, S=4)',
    loadResharded: 'load, resharded (W=4, S=2)',
    rawRead: 'raw read of the shard files, 4 dd',
  };
  console.log(`\nshard files: ${extra.fileBytes} bytes; page cache of the files before each load: ${extra.residentBeforeLoads.join(', ')} bytes resident`);
  console.log(`save: snapshot (host copy of the state; training may go on after it) ${rows.save.map((r) => r.snapshotSeconds.toFixed(3)).join(', ')} s; write + fsync of the slowest writer ${rows.save.map((r) => r.writeSeconds.toFixed(3)).join(', ')} s`);
  console.log(`load: per-rank bytes read ${rows.load.map((r) => r.bytes / 4).join(', ')} (same layout), ${rows.loadResharded.map((r) => r.bytes / 4).join(', ')} (resharded)`);
  console.log('| operation | bytes | seconds (median) | GB/s of model state | GB/s of bytes moved |');
  console.log('|---|---:|---:|---:|---:|');
  const summary = {};
  for (const [key, list] of Object.entries(rows)) {
    const seconds = median(list.map((r) => r.seconds));
    const bytes = median(list.map((r) => r.bytes));
    summary[key] = { seconds, bytes, all: list.map((r) => r.seconds) };
    console.log(`| ${labels[key]} | ${bytes} | ${seconds.toFixed(3)} (${list.map((r) => r.seconds.toFixed(3)).join(', ')}) | ${(stateBytes / seconds / 1e9).toFixed(2)} | ${(bytes / seconds / 1e9).toFixed(2)} |`);
  }
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ params, stateBytes, ...extra, summary }, null, 1));
}

if (process.env.BENCH_RANK) {
  rank().catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  driver().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
