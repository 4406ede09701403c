/**
 * Saving a checkpoint: collective over the world, atomic on disk.
 *
 * 1. Every rank copies what it saves (replication rank 0 of each slice: its fp32
 *    shard space; the others save nothing: they hold the same values). Training may
 *    go on from here (`beginSave`).
 * 2. World rank 0 (the committer) makes a temporary directory `dir/.tmp-<tag>-<nonce>`
 *    holding a marker with the nonce. Every writer then checks that it sees that
 *    marker: a directory that is not one shared file system is named as such here,
 *    before anything is written.
 * 3. Each writer writes its shard file into the temporary directory and fsyncs it,
 *    checksumming every chunk of every tensor from memory meanwhile.
 * 4. The committer checks every file it now sees against what its writer reported
 *    (length, header checksum), writes index.json, fsyncs it and the directory,
 *    renames the directory to `dir/<tag>`, fsyncs `dir`, and replaces `dir/latest`
 *    the same way (temporary file, fsync, rename, fsync). Then it prunes (`keep`).
 *
 * Each step ends with an exchange of every rank's outcome (agree.ts), so a failure
 * anywhere fails the save on every rank at once. A crash at any moment leaves the
 * previous checkpoints and `latest` as they were, or the new checkpoint complete:
 * never a visible half-written one (leftover temporary directories are hidden and
 * removed by the next save).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageVersion } from '../../core/version';
import { MicsError, invalidArgument, valueText } from '../../core/errors';
import { hostKernels } from '../../kernels/host';
import type { EngineState } from '../types';
import { agree, attempt } from './agree';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  CHECKSUM_CHUNK_BYTES,
  INDEX_FILE,
  LATEST_FILE,
  checkTag,
  defaultTag,
  piecesOf,
  shardFileName,
  statesOf,
  tensorName,
  type CheckpointIndex,
  type JsonValue,
  type SavedFile,
  type StateName,
} from './format';
import { checkPath, exists, fsCall, fsyncDirectory, inParallel, makeDirectories, writeFileAtomic, writeFileSynced } from './io';
import { SafetensorsFile, SafetensorsWriter } from './safetensors';
import type { CheckpointEngine, PendingSave, SaveOptions, SaveResult } from './types';

/** The marker the committer leaves in the temporary directory (proof that writers see the same directory). */
const MARKER = '.mics-save';
const DEFAULT_WRITE_TIMEOUT_MS = 30 * 60 * 1000;

/** One save at a time per engine: a second waits for the first (settles when the last one asked for has). */
const inFlight = new WeakMap<object, Promise<void>>();

/**
 * Resolves once every save of `engine` asked for so far has settled: loads, exports and
 * imports wait for it, since they too exchange over the world communicator.
 */
export function savesSettled(engine: CheckpointEngine): Promise<void> {
  return inFlight.get(engine) ?? Promise.resolve();
}

interface Prepared {
  dir: string;
  tag: string;
  step: number;
  keep: number | undefined;
  userState: JsonValue | null;
  timeoutMs: number;
  /** This rank's copy (writers only). */
  state?: EngineState;
  /** fp16's loss scaler at the copy (for the index). */
  lossScaler?: EngineState['lossScaler'];
  snapshotSeconds: number;
}

function checkOptions(engine: CheckpointEngine, given: unknown, options: SaveOptions): Omit<Prepared, 'state' | 'lossScaler' | 'snapshotSeconds'> {
  const dir = checkPath('save: directory', given);
  if (typeof options !== 'object' || options === null) throw invalidArgument('save: options must be an object');
  const step = engine.stepCount;
  const tag = checkTag(options.tag ?? defaultTag(step));
  const keep = options.keep;
  if (keep !== undefined && (!Number.isSafeInteger(keep) || keep < 1)) throw invalidArgument(`save: keep ${valueText(keep)} is not valid: use an integer >= 1`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw invalidArgument(`save: timeoutMs ${valueText(options.timeoutMs)} is not valid: use a positive integer (ms)`);
  let userState: JsonValue | null = null;
  if (options.userState !== undefined) {
    let text: string | undefined;
    try {
      text = JSON.stringify(options.userState);
    } catch (err) {
      throw invalidArgument(`save: userState is not JSON-serialisable (${(err as Error).message})`);
    }
    if (typeof text !== 'string') throw invalidArgument(`save: userState (${typeof options.userState}) is not JSON-serialisable: use objects, arrays, strings, numbers, booleans and null`);
    userState = JSON.parse(text) as JsonValue;
  }
  return { dir, tag, step, keep, userState, timeoutMs };
}

/** The checkpoints of `dir` (directories holding a mics index), newest first by save time. */
async function checkpointsIn(dir: string): Promise<{ tag: string; createdAt: string; step: number }[]> {
  const found: { tag: string; createdAt: string; step: number }[] = [];
  for (const entry of await fsCall('list', dir, () => fs.promises.readdir(dir))) {
    if (entry.startsWith('.') || entry === LATEST_FILE) continue;
    try {
      const index = JSON.parse(await fs.promises.readFile(path.join(dir, entry, INDEX_FILE), 'utf8')) as Partial<CheckpointIndex>;
      if (index.format === CHECKPOINT_FORMAT) found.push({ tag: entry, createdAt: String(index.createdAt), step: Number(index.step) });
    } catch {
      // not a checkpoint of ours: never touched
    }
  }
  return found.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : b.step - a.step));
}

async function readLatest(dir: string): Promise<string | undefined> {
  const file = path.join(dir, LATEST_FILE);
  if (!(await exists(file))) return undefined;
  return (await fsCall('read', file, () => fs.promises.readFile(file, 'utf8'))).trim();
}

/** Deletes a directory tree: renamed to a hidden name first, so a crash never leaves a half-deleted checkpoint visible. */
async function removeTree(dir: string, name: string, nonce: string): Promise<void> {
  const hidden = path.join(dir, `.trash-${name}-${nonce}`);
  await fsCall('rename', path.join(dir, name), () => fs.promises.rename(path.join(dir, name), hidden));
  await fsCall('remove', hidden, () => fs.promises.rm(hidden, { recursive: true, force: true }));
}

/** Step 2 on the committer: the temporary directory and its marker. */
async function prepareDirectory(p: Prepared, nonce: string): Promise<string> {
  const { dir, tag } = p;
  await makeDirectories(dir);
  // What saves that died left behind (hidden names; one job per checkpoint directory).
  for (const entry of await fsCall('list', dir, () => fs.promises.readdir(dir))) {
    if (entry.startsWith('.tmp-') || entry.startsWith('.trash-')) {
      await fsCall('remove', path.join(dir, entry), () => fs.promises.rm(path.join(dir, entry), { recursive: true, force: true }));
    }
  }
  if ((await readLatest(dir)) === tag) {
    throw invalidArgument(
      `save: checkpoint '${tag}' in ${dir} is the latest one: save under another tag (replacing the latest checkpoint in place could leave none loadable if the job died meanwhile)`,
    );
  }
  const temporary = `.tmp-${tag}-${nonce}`;
  await fsCall('create directory', path.join(dir, temporary), () => fs.promises.mkdir(path.join(dir, temporary)));
  await fsCall('write', path.join(dir, temporary, MARKER), () => fs.promises.writeFile(path.join(dir, temporary, MARKER), nonce));
  return temporary;
}

/** Step 2 on a writer: the committer's marker must be visible here. */
async function checkShared(engine: CheckpointEngine, p: Prepared, temporary: string, nonce: string): Promise<void> {
  const marker = path.join(p.dir, temporary, MARKER);
  let seen: string | undefined;
  try {
    seen = await fs.promises.readFile(marker, 'utf8');
  } catch {
    seen = undefined;
  }
  if (seen !== nonce) {
    const world = engine.groups.world;
    throw invalidArgument(
      `save: checkpoint directory ${p.dir} is not shared: world rank ${world.rank} (node ${world.nodes[world.rank]}) does not see ` +
        `${temporary}/${MARKER}, which world rank 0 (node ${world.nodes[0]}) just created there. Every writing rank must see the same ` +
        'directory: put checkpoints on a shared file system (NFS, Lustre, a cloud file store)',
    );
  }
}

interface TensorToWrite {
  name: string;
  view: Float32Array;
}

/** This writer's tensors: per state, per parameter segment of its slice (padding skipped). */
function tensorsOf(engine: CheckpointEngine, state: EngineState): { states: StateName[]; tensors: TensorToWrite[] } {
  const states = statesOf(engine.optimizer);
  const arrays: Record<StateName, Float32Array | undefined> = {
    master: state.tensors.master,
    exp_avg: state.tensors.expAvg,
    exp_avg_sq: state.tensors.expAvgSq,
    momentum: state.tensors.momentum,
  };
  const segments = engine.layout.segments(engine.groups.partition.rank).filter((s) => s.parameter);
  const tensors: TensorToWrite[] = [];
  for (const st of states) {
    const array = arrays[st];
    if (array === undefined) throw new MicsError(`save: the engine exported no '${st}'`, 'MICS_INTERNAL');
    for (const s of segments) tensors.push({ name: tensorName(st, s.parameter!.name), view: array.subarray(s.offset, s.offset + s.length) });
  }
  return { states, tensors };
}

/** XXH64 of each CHECKSUM_CHUNK_BYTES piece of each tensor (a few on libuv's pool at once). */
async function chunkChecksums(tensors: readonly TensorToWrite[]): Promise<Record<string, string[]>> {
  const jobs: { tensor: number; chunk: number; bytes: Uint8Array }[] = [];
  const out: Record<string, string[]> = {};
  tensors.forEach((t, i) => {
    const bytes = new Uint8Array(t.view.buffer, t.view.byteOffset, t.view.byteLength);
    const n = Math.max(1, Math.ceil(bytes.length / CHECKSUM_CHUNK_BYTES));
    out[t.name] = new Array<string>(n);
    for (let c = 0; c < n; c++) jobs.push({ tensor: i, chunk: c, bytes: bytes.subarray(c * CHECKSUM_CHUNK_BYTES, (c + 1) * CHECKSUM_CHUNK_BYTES) });
  });
  await inParallel(jobs, 2, async (j) => {
    out[tensors[j.tensor].name][j.chunk] = await hostKernels.checksum(j.bytes);
  });
  return out;
}

/** One value for a whole file: XXH64 over its header checksum and chunk checksums, in data order. */
export async function fileChecksum(headerChecksum: string, tensorOrder: readonly string[], chunks: Record<string, string[]>): Promise<string> {
  const text = [headerChecksum, ...tensorOrder.flatMap((t) => chunks[t])].join('\n');
  return hostKernels.checksum(Buffer.from(text, 'utf8'));
}

/** Step 3: writes this writer's shard file; resolves to its index entry. */
async function writeShard(engine: CheckpointEngine, p: Prepared, temporary: string): Promise<SavedFile> {
  const state = p.state as EngineState;
  const S = engine.groups.partition.size;
  const partitionRank = engine.groups.partition.rank;
  const name = shardFileName(partitionRank, S);
  const file = path.join(p.dir, temporary, name);
  const { tensors } = tensorsOf(engine, state);
  const writer = await SafetensorsWriter.create(
    file,
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [t.view.length] })),
    { 'mics.format': 'checkpoint-shard', 'mics.step': String(p.step), 'mics.partition_rank': String(partitionRank), 'mics.partition_size': String(S) },
  );
  const sums = chunkChecksums(tensors);
  try {
    // Consecutive tensors that are consecutive in memory go in one write.
    let run: Float32Array | undefined;
    for (const t of tensors) {
      if (run !== undefined && run.buffer === t.view.buffer && run.byteOffset + run.byteLength === t.view.byteOffset) {
        run = new Float32Array(run.buffer, run.byteOffset, run.length + t.view.length);
        continue;
      }
      if (run !== undefined) await writer.write(run);
      run = t.view;
    }
    if (run !== undefined) await writer.write(run);
    await writer.close({ sync: true });
  } catch (err) {
    await writer.abort();
    await sums.catch(() => undefined);
    throw err;
  }
  const chunks = await sums;
  const headerChecksum = await hostKernels.checksum(writer.headerBytes);
  return {
    name,
    partitionRank,
    writer: engine.groups.world.rank,
    bytes: writer.fileBytes,
    headerChecksum,
    chunks,
    checksum: await fileChecksum(
      headerChecksum,
      tensors.map((t) => t.name),
      chunks,
    ),
  };
}

/** Step 4 on the committer. */
async function commit(engine: CheckpointEngine, p: Prepared, temporary: string, nonce: string, reported: JsonValue[]): Promise<{ bytes: number }> {
  const S = engine.groups.partition.size;
  const dir = p.dir;
  const tmpDir = path.join(dir, temporary);
  const files = reported.filter((v): v is JsonValue => v !== null) as unknown as SavedFile[];
  files.sort((a, b) => a.partitionRank - b.partitionRank);
  if (files.length !== S || files.some((f, i) => f.partitionRank !== i)) {
    throw new MicsError(`save: expected one shard file per slice 0..${S - 1}, writers reported ${files.map((f) => f.partitionRank).join(', ')}`, 'MICS_INTERNAL');
  }
  // What every writer wrote must be what the committer sees: else the directory is not one file system.
  for (const f of files) {
    const full = path.join(tmpDir, f.name);
    const notShared = (what: string): MicsError =>
      invalidArgument(
        `save: checkpoint directory ${dir} is not shared: world rank ${f.writer} wrote ${f.name} (${f.bytes} bytes) but world rank 0 ${what}. ` +
          'Every writing rank must see the same directory: put checkpoints on a shared file system (NFS, Lustre, a cloud file store)',
      );
    if (!(await exists(full))) throw notShared('does not see it');
    const opened = await SafetensorsFile.open(full);
    try {
      const sum = await hostKernels.checksum(opened.headerBytes);
      if (opened.header.fileBytes !== f.bytes || sum !== f.headerChecksum) throw notShared(`sees ${opened.header.fileBytes} bytes with header checksum ${sum}`);
    } finally {
      await opened.close();
    }
  }
  const groups = engine.groups;
  const plan = groups.layout;
  const pieces = piecesOf(engine.layout);
  const states = statesOf(engine.optimizer);
  const index: CheckpointIndex = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    packageVersion,
    tag: p.tag,
    step: p.step,
    createdAt: new Date().toISOString(),
    layout: {
      worldSize: plan.worldSize,
      partitionSize: plan.partitionSize,
      replicationSize: plan.replicationSize,
      ranksPerNode: plan.ranksPerNode,
      nodes: plan.numNodes,
      hierarchical: plan.hierarchical,
      alignment: engine.layout.alignment,
      units: engine.layout.units.map((u) => ({ name: u.name, numel: u.numel, paddedNumel: u.paddedNumel, shardNumel: u.shardNumel, parameters: u.parameters.map((x) => x.name) })),
    },
    precision: engine.precision,
    dtypes: Object.fromEntries(states.map((s) => [s, 'F32'])),
    states,
    optimizer: engine.optimizer,
    accumulationSteps: engine.accumulationSteps,
    schedule: engine.schedule ?? null,
    lossScaler: p.lossScaler ?? null,
    userState: p.userState,
    parameters: engine.layout.parameters.map((x) => ({
      name: x.name,
      shape: [...x.shape],
      numel: x.numel,
      unit: engine.layout.unitOf(x.name).name,
      offset: x.offset,
      pieces: pieces.get(x.name) ?? [],
    })),
    files,
    totalBytes: files.reduce((s, f) => s + f.bytes, 0),
    checksumChunkBytes: CHECKSUM_CHUNK_BYTES,
  };
  await writeFileSynced(path.join(tmpDir, INDEX_FILE), `${JSON.stringify(index, null, 1)}\n`);
  await fsCall('remove', path.join(tmpDir, MARKER), () => fs.promises.rm(path.join(tmpDir, MARKER)));
  await fsyncDirectory(tmpDir);
  // The new checkpoint appears whole, by one rename; an older one of the same tag (never the latest) goes first.
  const target = path.join(dir, p.tag);
  const replaced = await exists(target);
  if (replaced) await fsCall('rename', target, () => fs.promises.rename(target, path.join(dir, `.trash-${p.tag}-${nonce}`)));
  await fsCall('rename', tmpDir, () => fs.promises.rename(tmpDir, target));
  await fsyncDirectory(dir);
  await writeFileAtomic(path.join(dir, LATEST_FILE), `${p.tag}\n`, path.join(dir, `.tmp-latest-${nonce}`));
  if (replaced) await fsCall('remove', path.join(dir, `.trash-${p.tag}-${nonce}`), () => fs.promises.rm(path.join(dir, `.trash-${p.tag}-${nonce}`), { recursive: true, force: true }));
  if (p.keep !== undefined) {
    const all = await checkpointsIn(dir);
    for (const old of all.filter((c) => c.tag !== p.tag).slice(p.keep - 1)) await removeTree(dir, old.tag, nonce);
  }
  return { bytes: index.totalBytes };
}

/** Steps 2 to 4, on every rank; `prepared` undefined when step 1 failed here (`error`). */
async function protocol(engine: CheckpointEngine, prepared: Prepared | undefined, error: unknown, started: number): Promise<SaveResult> {
  const world = engine.groups.world;
  const isCommitter = world.rank === 0;
  const isWriter = engine.groups.replication.rank === 0;
  const nonce = randomBytes(6).toString('hex');
  // 2: the temporary directory (committer), its name to everyone.
  const made = error !== undefined ? { error } : isCommitter ? await attempt(() => prepareDirectory(prepared as Prepared, nonce)) : {};
  // The committer knows its temporary directory at once: it removes it whatever fails later.
  const temporary: string | undefined = made.value;
  try {
    const timeout = { timeoutMs: prepared?.timeoutMs };
    const values = await agree(world, 'save (prepare)', { ...made, value: isCommitter ? { temporary: made.value ?? null, nonce } : null }, timeout);
    const first = values[0] as { temporary: string; nonce: string };
    const p = prepared as Prepared;
    // 3: the shard files.
    let writeSeconds = 0;
    let bytesWritten = 0;
    const wrote = await attempt(async () => {
      if (!isWriter) return null;
      await checkShared(engine, p, first.temporary, first.nonce);
      const t = performance.now();
      const entry = await writeShard(engine, p, first.temporary);
      writeSeconds = (performance.now() - t) / 1000;
      bytesWritten = entry.bytes;
      return entry as unknown as JsonValue;
    });
    p.state = undefined; // the copy is on disk: let it go
    const reported = await agree(world, 'save (write)', wrote, timeout);
    // 4: commit.
    const committed = isCommitter ? await attempt(() => commit(engine, p, first.temporary, first.nonce, reported)) : {};
    const sizes = await agree(world, 'save (commit)', { ...committed, value: committed.value?.bytes ?? null }, timeout);
    return {
      tag: p.tag,
      path: path.join(p.dir, p.tag),
      step: p.step,
      bytes: sizes[0] as number,
      bytesWritten,
      snapshotSeconds: p.snapshotSeconds,
      writeSeconds,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    // Whatever failed, the committer removes the temporary directory (best effort: the next save would).
    if (isCommitter && prepared !== undefined && temporary !== undefined) {
      await fs.promises.rm(path.join(prepared.dir, temporary), { recursive: true, force: true }).catch(() => undefined);
    }
    throw err;
  }
}

/**
 * Starts a save and resolves once this rank's state is copied: from then on training
 * may continue (the next step() changes nothing that is being written). `done`
 * settles when the checkpoint is committed. Collective over the world: every rank
 * calls it with the same directory and options. Save only between optimizer steps.
 */
export async function beginSave(engine: CheckpointEngine, dir: string, options: SaveOptions = {}): Promise<PendingSave> {
  // Queue behind the saves asked for before this one, before the first await.
  const previous = savesSettled(engine);
  let finished: () => void = () => undefined;
  const mine = new Promise<void>((resolve) => (finished = resolve));
  inFlight.set(
    engine,
    previous.then(() => mine),
  );
  await previous;
  const started = performance.now();
  const isWriter = engine.groups.replication.rank === 0;
  const copied = await attempt(async (): Promise<Prepared> => {
    const checked = checkOptions(engine, dir, options);
    if (!isWriter) {
      if (engine.microStep !== 0) throw invalidArgument(`save: an accumulation window is open (micro-step ${engine.microStep}): save between optimizer steps`);
      return { ...checked, snapshotSeconds: 0 };
    }
    const state = await engine.exportState();
    return { ...checked, state, lossScaler: state.lossScaler, snapshotSeconds: (performance.now() - started) / 1000 };
  });
  const done = protocol(engine, copied.value, copied.error, started);
  done.then(finished, finished);
  if (copied.error !== undefined) {
    // The exchange still runs so the other ranks fail at once; this rank reports here.
    done.catch(() => undefined);
    throw copied.error;
  }
  const p = copied.value as Prepared;
  return { tag: p.tag, step: p.step, snapshotSeconds: p.snapshotSeconds, done };
}

/**
 * Saves a checkpoint of the engine into `dir/<tag>` and points `dir/latest` at it;
 * resolves on every rank once it is committed. Collective over the world.
 */
export async function saveCheckpoint(engine: CheckpointEngine, dir: string, options: SaveOptions = {}): Promise<SaveResult> {
  return (await beginSave(engine, dir, options)).done;
}
