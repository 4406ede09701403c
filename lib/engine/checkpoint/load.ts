/**
 * Loading a checkpoint into an engine of any layout: each rank reads, from the shard
 * files, only the elements of its own slice (per parameter: the saved pieces that
 * overlap the range its current slice holds, offsets from the index), verified
 * chunk by chunk. Then every rank tells every other how it went; only when all
 * succeeded does any engine take the new state, so a failure anywhere leaves every
 * engine as it was.
 */
import { performance } from 'node:perf_hooks';
import { MicsError, invalidArgument } from '../../core/errors';
import type { EngineState } from '../types';
import { agree, attempt } from './agree';
import { piecesOf, statesOf, type StateName } from './format';
import { Checkpoint } from './reader';
import { savesSettled } from './save';
import type { CheckpointEngine, LoadOptions, LoadResult } from './types';

/**
 * Checks that the checkpoint's parameters are the engine's (names and shapes).
 * @throws MicsError MICS_MISMATCH listing what is missing, extra or shaped differently.
 */
export function checkParameters(where: string, engine: CheckpointEngine, saved: readonly { name: string; shape: readonly number[] }[], what = 'the checkpoint'): void {
  const mine = new Map(engine.layout.parameters.map((p) => [p.name, p]));
  const theirs = new Map(saved.map((p) => [p.name, p]));
  const missing = [...mine.keys()].filter((n) => !theirs.has(n));
  const extra = [...theirs.keys()].filter((n) => !mine.has(n));
  const shapes: string[] = [];
  for (const [name, p] of mine) {
    const s = theirs.get(name);
    if (s && (s.shape.length !== p.shape.length || s.shape.some((d, i) => d !== p.shape[i]))) {
      shapes.push(`'${name}' is [${s.shape.join(', ')}] in ${what}, [${p.shape.join(', ')}] in the model`);
    }
  }
  if (missing.length + extra.length + shapes.length === 0) return;
  const list = (names: string[]): string => (names.length > 10 ? `${names.slice(0, 10).join(', ')} and ${names.length - 10} more` : names.join(', '));
  const problems = [
    missing.length > 0 ? `missing from ${what}: ${list(missing)}` : '',
    extra.length > 0 ? `in ${what} but not in the model: ${list(extra)}` : '',
    shapes.length > 0 ? `shapes differ: ${list(shapes)}` : '',
  ].filter((x) => x !== '');
  throw new MicsError(`${where} does not match the model's parameters: ${problems.join('; ')}`, 'MICS_MISMATCH');
}

const ENGINE_NAMES: Record<StateName, keyof EngineState['tensors']> = { master: 'master', exp_avg: 'expAvg', exp_avg_sq: 'expAvgSq', momentum: 'momentum' };

/** Reads this rank's shard space of each state from the checkpoint. */
async function readShardSpace(engine: CheckpointEngine, checkpoint: Checkpoint, states: readonly StateName[]): Promise<Partial<Record<StateName, Float32Array>>> {
  const segments = engine.layout.segments(engine.groups.partition.rank).filter((s) => s.parameter);
  const out: Partial<Record<StateName, Float32Array>> = {};
  const tasks = [];
  for (const st of states) {
    const array = new Float32Array(engine.layout.shardNumel); // padding stays zero, as the engine keeps it
    out[st] = array;
    for (const s of segments) tasks.push(...checkpoint.plan(st, s.parameter!.name, s.parameterOffset, array.subarray(s.offset, s.offset + s.length)));
  }
  await checkpoint.runTasks(tasks);
  return out;
}

/**
 * Loads a checkpoint into the engine, at the engine's layout whatever the saved one
 * was. Collective over the world (every rank calls it with the same arguments);
 * call it between optimizer steps. Resolves on every rank once every rank holds the
 * new state; on any failure, every rank rejects and no engine changed.
 */
export async function loadCheckpoint(engine: CheckpointEngine, dir: string, options: LoadOptions = {}): Promise<LoadResult> {
  await savesSettled(engine);
  const started = performance.now();
  const world = engine.groups.world;
  let checkpoint: Checkpoint | undefined;
  const loaded = await attempt(async () => {
    if (typeof options !== 'object' || options === null) throw invalidArgument('load: options must be an object');
    checkpoint = await Checkpoint.open(dir, { tag: options.tag });
    const index = checkpoint.index;
    checkParameters(`checkpoint ${checkpoint.path}`, engine, index.parameters);
    const needed = options.weightsOnly ? (['master'] as StateName[]) : statesOf(engine.optimizer);
    if (!options.weightsOnly) {
      const saved = index.states.join(', ');
      if (saved !== needed.join(', ')) {
        throw new MicsError(
          `checkpoint ${checkpoint.path} holds [${saved}] (optimizer ${index.optimizer.type}); this engine's optimizer (${engine.optimizer.type}) keeps [${needed.join(', ')}]: ` +
            'use the same optimizer, or load with {weightsOnly: true} to take only the weights',
          'MICS_MISMATCH',
        );
      }
    }
    const arrays = await readShardSpace(engine, checkpoint, needed);
    let state: EngineState;
    if (options.weightsOnly) {
      state = await engine.exportState();
      state.tensors.master = arrays.master as Float32Array;
    } else {
      const tensors = {} as EngineState['tensors'];
      for (const st of needed) tensors[ENGINE_NAMES[st]] = arrays[st] as Float32Array;
      state = { step: index.step, lossScaler: index.lossScaler ?? undefined, tensors };
    }
    return state;
  });
  try {
    const index = checkpoint?.index;
    const values = await agree(world, 'load', { error: loaded.error, value: index ? { tag: index.tag, createdAt: index.createdAt } : null });
    const mine = JSON.stringify(values[world.rank]);
    const other = values.findIndex((v) => JSON.stringify(v) !== mine);
    if (other >= 0) {
      throw new MicsError(
        `load: ranks found different checkpoints (world rank ${world.rank}: ${mine}, world rank ${other}: ${JSON.stringify(values[other])}): was ${dir} saved to meanwhile?`,
        'MICS_MISMATCH',
        { rank: world.rank, group: world.name, op: 'load', peer: other, worldPeer: other },
      );
    }
    const ckpt = checkpoint as Checkpoint;
    const state = loaded.value as EngineState;
    await engine.importState(state);
    const mineNow = piecesOf(engine.layout);
    const resharded = ckpt.index.parameters.some((p) => JSON.stringify(p.pieces) !== JSON.stringify(mineNow.get(p.name)));
    const l = ckpt.index.layout;
    return {
      tag: ckpt.tag,
      path: ckpt.path,
      step: engine.stepCount,
      userState: ckpt.index.userState ?? null,
      saved: { worldSize: l.worldSize, partitionSize: l.partitionSize, replicationSize: l.replicationSize, ranksPerNode: l.ranksPerNode, nodes: l.nodes },
      resharded,
      bytesRead: ckpt.bytesRead,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await checkpoint?.close();
  }
}
