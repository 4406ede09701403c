/**
 * kill -9 during a save never costs the last good checkpoint. A job of 4 ranks (S=2:
 * ranks 0 and 1 write, ranks 2 and 3 hold replicas) saves after steps 1, 2 and 3; at
 * the save of step 2, one rank (the committer, the other writer, a replica) or the
 * whole job SIGKILLs itself at a seeded random moment from the start of the save.
 * Afterwards the directory shows only complete checkpoints: `latest` names step 1 (the
 * save died) or step 2 (it committed; step 3 when the kill came after it), every visible checkpoint verifies and holds
 * exactly what the uninterrupted run saved at that step, and resuming from `latest`
 * ends with the uninterrupted run's parameters bit for bit (checked on 3 of the 10
 * points here; scripts/kill-during-save.js runs 50 points, each resumed).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '../../lib';
import { killAllRanks, type RankResult } from '../helpers/ranks';
import { mulberry32 } from '../helpers/random';
import { expectAllOk, expectBitIdentical, readStates, removeTemporaryDirectories, temporaryDirectory, trainRun } from '../helpers/checkpoints';

afterAll(() => {
  killAllRanks();
  removeTemporaryDirectories();
});

const base = { W: 4, S: 2, A: 1, B: 4, steps: 4, seed: 11, optimizer: { type: 'adamw', lr: 0.02 }, extra: 20000 };
const TAGS = ['step-00000001', 'step-00000002', 'step-00000003'];

let uninterrupted: RankResult[];
const saved: Record<string, Record<string, Record<string, Float32Array>>> = {};

beforeAll(async () => {
  const dir = temporaryDirectory();
  uninterrupted = await trainRun({ ...base, checkpoint: { dir, saveAt: [1, 2, 3] } });
  expectAllOk(uninterrupted);
  for (const tag of TAGS) saved[tag] = await readStates(dir, tag);
}, 120000);

// Seeded moments: replay by seed.
const SEED = 2024;
const random = mulberry32(SEED);
const targets: (number[] | 'all')[] = [[0], [1], [3], 'all'];
// A save of this job takes about 15 ms here (scripts/kill-during-save.js prints it): moments in [0, 20) ms.
const points = Array.from({ length: 10 }, (_, i) => ({ delayMs: Math.floor(random() * 20), ranks: targets[i % targets.length], resume: i < 4 && i !== 2 }));

describe(`kill -9 at a random moment of a save (seed ${SEED})`, () => {
  it.each(points)('delay $delayMs ms, ranks $ranks: the previous checkpoint or the new one, complete; resume (when checked) equals the uninterrupted run', async ({ delayMs, ranks, resume }) => {
    const dir = temporaryDirectory();
    const killed = await trainRun({ ...base, checkpoint: { dir, saveAt: [1, 2, 3] }, killDuringSave: { at: 2, delayMs, ranks } }, 60000);
    const victims = ranks === 'all' ? [0, 1, 2, 3] : ranks;
    for (const r of killed) {
      if (victims.includes(r.rank)) expect([r.rank, r.signal]).toEqual([r.rank, 'SIGKILL']);
      else expect([r.rank, r.timedOut, r.json?.error?.micsError]).toEqual([r.rank, false, true]); // failed at once, with a MicsError
    }
    // Visible: `latest` and complete checkpoints only (a dead save leaves hidden .tmp-* at most):
    // every one up to `latest`, and perhaps the next, committed just before `latest` was to move.
    const latest = fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim();
    expect(TAGS).toContain(latest);
    const tags = fs.readdirSync(dir).filter((e) => !e.startsWith('.') && e !== 'latest');
    const upTo = TAGS.indexOf(latest);
    expect(tags.filter((t) => TAGS.indexOf(t) <= upTo).sort()).toEqual(TAGS.slice(0, upTo + 1));
    for (const t of tags) expect(TAGS.slice(0, upTo + 2)).toContain(t);
    for (const tag of tags) {
      const checkpoint = await Checkpoint.open(dir, { tag });
      const report = await checkpoint.verify();
      await checkpoint.close();
      expect([tag, report.ok]).toEqual([tag, true]);
      expectBitIdentical(await readStates(dir, tag), saved[tag]);
    }
    if (resume) {
      const resumed = await trainRun({ ...base, resume: { dir } });
      expectAllOk(resumed);
      expect(resumed[0].json.loaded.tag).toBe(latest);
      expect(resumed[0].json.digest).toEqual(uninterrupted[0].json.digest);
    }
  }, 120000);
});
