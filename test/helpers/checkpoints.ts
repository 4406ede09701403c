/**
 * For the checkpoint tests: run the engine's rank program (test/fixtures/engine/train.js)
 * with checkpoint options, read a checkpoint's states back (through the package's
 * reader, whose checksums are verified), and compare them bit for bit or to a
 * relative tolerance.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Checkpoint, type StateName } from '../../lib';
import { describeRanks, repoRoot, runRanks, startRanks, type RankResult, type StartedRanks } from './ranks';

export const trainScript = path.join(repoRoot, 'test', 'fixtures', 'engine', 'train.js');

/** A rank program configuration (see train.js); W and nodes choose the job. */
export interface TrainConfig {
  W: number;
  nodes?: number;
  S: number;
  [key: string]: unknown;
}

export function trainRun(config: TrainConfig, timeoutMs = 120000): Promise<RankResult[]> {
  const { W, nodes, ...rest } = config;
  return runRanks({ n: W, nodes, script: trainScript, args: [JSON.stringify(rest)], timeoutMs });
}

export function startTrainRun(config: TrainConfig, timeoutMs = 120000): Promise<StartedRanks> {
  const { W, nodes, ...rest } = config;
  return startRanks({ n: W, nodes, script: trainScript, args: [JSON.stringify(rest)], timeoutMs });
}

/** Every rank exited 0 without an error in its RESULT. */
export function expectAllOk(results: RankResult[]): void {
  const context = describeRanks(results);
  for (const r of results) {
    expect([context, r.code, r.json?.fatal, r.json?.error, r.json?.createError]).toEqual([context, 0, undefined, undefined, undefined]);
  }
}

/** A fresh temporary directory, removed by removeTemporaryDirectories(). */
const made: string[] = [];
export function temporaryDirectory(prefix = 'mics-ckpt-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}
export function removeTemporaryDirectories(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** Every state of every parameter of a checkpoint, full (consolidated), by state then name. */
export async function readStates(dir: string, tag?: string): Promise<Record<string, Record<string, Float32Array>>> {
  const checkpoint = await Checkpoint.open(dir, { tag });
  try {
    const out: Record<string, Record<string, Float32Array>> = {};
    for (const state of checkpoint.index.states) out[state] = await checkpoint.readAll(state as StateName);
    return out;
  } finally {
    await checkpoint.close();
  }
}

/** The same states and names, every value with the same bits. */
export function expectBitIdentical(got: Record<string, Record<string, Float32Array>>, want: Record<string, Record<string, Float32Array>>): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [state, params] of Object.entries(want)) {
    expect(Object.keys(got[state]).sort()).toEqual(Object.keys(params).sort());
    for (const [name, values] of Object.entries(params)) {
      const a = Buffer.from(got[state][name].buffer, got[state][name].byteOffset, got[state][name].byteLength);
      const b = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
      expect([state, name, a.equals(b)]).toEqual([state, name, true]);
    }
  }
}

/** max|got - want| / max|want| per state and parameter. */
export function relativeErrors(got: Record<string, Record<string, Float32Array>>, want: Record<string, Record<string, Float32Array>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [state, params] of Object.entries(want)) {
    for (const [name, ref] of Object.entries(params)) {
      let delta = 0;
      let scale = 0;
      ref.forEach((r, i) => {
        delta = Math.max(delta, Math.abs(got[state][name][i] - r));
        scale = Math.max(scale, Math.abs(r));
      });
      out[`${state}/${name}`] = scale === 0 ? delta : delta / scale;
    }
  }
  return out;
}
