/**
 * Consolidated weights in the Hugging Face layout: `model.safetensors` holding every
 * parameter by name with its shape, or, above a size, `model-00001-of-0000n.safetensors`
 * files plus `model.safetensors.index.json` (`{metadata: {total_size}, weight_map:
 * {name: file}}`). Export from a checkpoint directory (no engine, one parameter in
 * memory at a time) or from a live engine; import into an engine, each rank reading
 * only the elements of its own slice.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MicsError, invalidArgument, valueText } from '../../core/errors';
import { hostKernels } from '../../kernels/host';
import { agree, attempt } from './agree';
import { allocateFloat32, checkPath, exists, fsCall, fsyncDirectory, inParallel, makeDirectories, writeFileAtomic } from './io';
import { checkParameters } from './load';
import { Checkpoint } from './reader';
import { savesSettled } from './save';
import { SAFETENSORS_DTYPE_BYTES, SafetensorsFile, SafetensorsWriter, type SafetensorsTensor } from './safetensors';
import type { CheckpointEngine, ExportDType, ExportOptions, ExportResult, ImportResult } from './types';

export const MODEL_FILE = 'model.safetensors';
export const MODEL_INDEX_FILE = 'model.safetensors.index.json';
const DEFAULT_MAX_SHARD_BYTES = 5 * 1000 ** 3;
/** Elements converted at a time from F16, BF16 or F64 (the buffer for them is at most 32 MiB). */
const CONVERT_PIECE = 2 ** 22;

interface ExportEntry {
  name: string;
  shape: readonly number[];
  numel: number;
}

/** Where each tensor goes: one file, or `model-0000k-of-0000n` files of at most maxShardBytes. */
function planFiles(entries: readonly ExportEntry[], elementBytes: number, maxShardBytes: number): { file: string; entries: ExportEntry[] }[] {
  const groups: ExportEntry[][] = [];
  let current: ExportEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = e.numel * elementBytes;
    if (current.length > 0 && bytes + size > maxShardBytes) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  if (groups.length <= 1) return [{ file: MODEL_FILE, entries: groups[0] ?? [] }];
  const pad = (n: number): string => String(n).padStart(5, '0');
  return groups.map((g, i) => ({ file: `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`, entries: g }));
}

function checkExportOptions(outDir: unknown, options: ExportOptions): { dtype: ExportDType; maxShardBytes: number } {
  if (typeof options !== 'object' || options === null) throw invalidArgument('export: options must be an object');
  checkPath('export: output directory', outDir);
  const dtype = options.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16') throw invalidArgument(`export: dtype '${valueText(dtype)}' is not valid: use 'f32' or 'bf16'`);
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes < 1) throw invalidArgument(`export: maxShardBytes ${valueText(options.maxShardBytes)} is not valid: use a positive integer (bytes)`);
  return { dtype, maxShardBytes };
}

/**
 * Writes the files: each under a hidden temporary name, fsynced, then renamed into
 * place; the index (when sharded) last. `values(name)` gives one parameter's fp32 values.
 */
async function writeModel(
  outDir: string,
  entries: readonly ExportEntry[],
  values: (name: string) => Promise<Float32Array>,
  options: { dtype: ExportDType; maxShardBytes: number },
  metadata: Record<string, string>,
): Promise<{ files: string[]; bytes: number }> {
  await makeDirectories(outDir);
  const elementBytes = options.dtype === 'bf16' ? 2 : 4;
  const plan = planFiles(entries, elementBytes, options.maxShardBytes);
  const nonce = randomBytes(6).toString('hex');
  const weightMap: Record<string, string> = {};
  let total = 0;
  let bytes = 0;
  for (const { file, entries: group } of plan) {
    const temporary = path.join(outDir, `.tmp-${file}-${nonce}`);
    const writer = await SafetensorsWriter.create(
      temporary,
      group.map((e) => ({ name: e.name, dtype: options.dtype === 'bf16' ? ('BF16' as const) : ('F32' as const), shape: [...e.shape] })),
      { format: 'pt', ...metadata },
    );
    try {
      for (const e of group) {
        const f32 = await values(e.name);
        if (options.dtype === 'bf16') {
          const half = new Uint16Array(f32.length);
          await hostKernels.cast({ data: half, dtype: 'bf16' }, f32);
          await writer.write(half);
        } else {
          await writer.write(f32);
        }
        weightMap[e.name] = file;
        total += e.numel * elementBytes;
      }
      await writer.close({ sync: true });
    } catch (err) {
      await writer.abort();
      await fs.promises.rm(temporary, { force: true }).catch(() => undefined);
      throw err;
    }
    await fsCall('rename', temporary, () => fs.promises.rename(temporary, path.join(outDir, file)));
    bytes += writer.fileBytes;
  }
  const files = plan.map((p) => p.file);
  if (plan.length > 1) {
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    await writeFileAtomic(path.join(outDir, MODEL_INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`, path.join(outDir, `.tmp-index-${nonce}`));
    files.push(MODEL_INDEX_FILE);
  }
  // Files of an earlier export into this directory that this one does not have would mislead a loader.
  for (const entry of await fsCall('list', outDir, () => fs.promises.readdir(outDir))) {
    if (!files.includes(entry) && (entry === MODEL_FILE || entry === MODEL_INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(entry))) {
      await fsCall('remove', path.join(outDir, entry), () => fs.promises.rm(path.join(outDir, entry), { force: true }));
    }
  }
  await fsyncDirectory(outDir);
  return { files, bytes };
}

/**
 * Exports a checkpoint's master weights as consolidated safetensors in `outDir`
 * (no engine needed: `mics checkpoint export` runs this). One parameter is in memory
 * at a time.
 */
export async function exportCheckpoint(checkpointDir: string, outDir: string, options: ExportOptions = {}): Promise<ExportResult> {
  const started = performance.now();
  const checked = checkExportOptions(outDir, options);
  const checkpoint = await Checkpoint.open(checkpointDir, { tag: options.tag });
  try {
    const entries = checkpoint.index.parameters.map((p) => ({ name: p.name, shape: p.shape, numel: p.numel }));
    const { files, bytes } = await writeModel(outDir, entries, (name) => checkpoint.read('master', name), checked, {
      'mics.checkpoint': checkpoint.tag,
      'mics.step': String(checkpoint.index.step),
    });
    return { files, tensors: entries.length, bytes, seconds: (performance.now() - started) / 1000 };
  } finally {
    await checkpoint.close();
  }
}

/**
 * Exports the engine's current weights (fp32 master, consolidated) into `outDir`:
 * collective over the world (the weights are gathered on every rank, world rank 0
 * writes); for models whose full weights fit in host memory.
 */
export async function exportWeights(engine: CheckpointEngine, outDir: string, options: ExportOptions = {}): Promise<ExportResult> {
  await savesSettled(engine);
  const started = performance.now();
  const world = engine.groups.world;
  const local = await attempt(async () => checkExportOptions(outDir, options));
  // Collective even when this rank's arguments were bad: the others must not wait for it.
  const gathered = await attempt(() => engine.fullParameters());
  const full = local.error !== undefined ? local : gathered;
  const written =
    full.error === undefined && world.rank === 0
      ? await attempt(async () => {
          const params = gathered.value as Record<string, Float32Array>;
          const entries = engine.layout.parameters.map((p) => ({ name: p.name, shape: p.shape, numel: p.numel }));
          return writeModel(outDir, entries, async (name) => params[name], local.value as { dtype: ExportDType; maxShardBytes: number }, { 'mics.step': String(engine.stepCount) });
        })
      : { error: full.error };
  const values = await agree(world, 'exportWeights', { error: written.error, value: world.rank === 0 ? (written.value ?? null) : null });
  const result = values[0] as { files: string[]; bytes: number };
  return { files: result.files, tensors: engine.layout.parameters.length, bytes: result.bytes, seconds: (performance.now() - started) / 1000 };
}

/** The tensors of a safetensors model: one file, an index with its files, or a directory holding either. */
export class WeightsSource {
  private constructor(
    readonly files: readonly SafetensorsFile[],
    private readonly byName: Map<string, { file: SafetensorsFile; tensor: SafetensorsTensor }>,
  ) {}

  /**
   * Opens `location`: a `.safetensors` file, a `model.safetensors.index.json`, or a
   * directory holding `model.safetensors` or `model.safetensors.index.json`.
   */
  static async open(location: string): Promise<WeightsSource> {
    checkPath('weights path', location, 'give a file or directory');
    if (!(await exists(location))) throw invalidArgument(`weights path ${location} does not exist`);
    let target = location;
    if ((await fsCall('stat', location, () => fs.promises.stat(location))).isDirectory()) {
      if (await exists(path.join(location, MODEL_FILE))) target = path.join(location, MODEL_FILE);
      else if (await exists(path.join(location, MODEL_INDEX_FILE))) target = path.join(location, MODEL_INDEX_FILE);
      else throw invalidArgument(`${location} holds neither ${MODEL_FILE} nor ${MODEL_INDEX_FILE}`);
    }
    const files: SafetensorsFile[] = [];
    const byName = new Map<string, { file: SafetensorsFile; tensor: SafetensorsTensor }>();
    try {
      if (target.endsWith('.json')) {
        const text = await fsCall('read', target, () => fs.promises.readFile(target, 'utf8'));
        let index: { weight_map?: unknown };
        try {
          index = JSON.parse(text) as { weight_map?: unknown };
        } catch (err) {
          throw new MicsError(`${target} is not valid JSON (${(err as Error).message})`, 'MICS_CORRUPT');
        }
        const map = index?.weight_map;
        if (typeof map !== 'object' || map === null || Array.isArray(map) || Object.values(map).some((v) => typeof v !== 'string' || v.includes('/') || v.startsWith('.'))) {
          throw new MicsError(`${target} is not a safetensors index: it needs "weight_map": {tensor name: file name}`, 'MICS_CORRUPT');
        }
        const opened = new Map<string, SafetensorsFile>();
        for (const [name, fileName] of Object.entries(map as Record<string, string>)) {
          let file = opened.get(fileName);
          if (!file) {
            file = await SafetensorsFile.open(path.join(path.dirname(target), fileName));
            opened.set(fileName, file);
            files.push(file);
          }
          const tensor = file.header.tensor(name);
          if (!tensor) throw new MicsError(`${target} maps '${name}' to ${fileName}, which has no such tensor`, 'MICS_CORRUPT');
          byName.set(name, { file, tensor });
        }
      } else {
        const file = await SafetensorsFile.open(target);
        files.push(file);
        for (const tensor of file.header.tensors) byName.set(tensor.name, { file, tensor });
      }
    } catch (err) {
      for (const f of files) await f.close();
      throw err;
    }
    return new WeightsSource(files, byName);
  }

  /** Every tensor by name, with its shape. */
  tensors(): { name: string; shape: readonly number[]; dtype: string }[] {
    return [...this.byName.entries()].map(([name, t]) => ({ name, shape: t.tensor.shape, dtype: t.tensor.dtype }));
  }

  /** The file and header entry of tensor `name`, whose dtype must be one readInto converts (else MICS_MISMATCH). */
  private convertible(name: string): { file: SafetensorsFile; tensor: SafetensorsTensor } {
    const found = this.byName.get(name);
    if (!found) throw invalidArgument(`no tensor '${name}'`);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(found.tensor.dtype)) {
      throw new MicsError(`${found.file.path}: tensor '${name}' is ${found.tensor.dtype}; weights must be F32, F16, BF16 or F64`, 'MICS_MISMATCH');
    }
    return found;
  }

  /** Elements `[start, start + target.length)` of tensor `name`, converted to fp32 (F32, F16, BF16, F64). */
  async readInto(name: string, start: number, target: Float32Array): Promise<number> {
    const { file, tensor } = this.convertible(name);
    if (!(target instanceof Float32Array)) throw invalidArgument(`read of tensor '${name}' of ${file.path}: the target must be a Float32Array`);
    const size = SAFETENSORS_DTYPE_BYTES[tensor.dtype];
    if (tensor.dtype === 'F32') {
      await file.read(name, start * 4, target);
      return target.byteLength;
    }
    // Other dtypes through a bounded buffer, piece by piece: never a second copy of the whole tensor.
    const piece = Math.min(target.length, CONVERT_PIECE);
    const buffer = tensor.dtype === 'F64' ? new Float64Array(piece) : new Uint16Array(piece);
    for (let done = 0; done < target.length; done += piece) {
      const n = Math.min(piece, target.length - done);
      const from = buffer.subarray(0, n);
      await file.read(name, (start + done) * size, from);
      const to = target.subarray(done, done + n);
      if (from instanceof Float64Array) to.set(from);
      else await hostKernels.cast(to, { data: from, dtype: tensor.dtype === 'BF16' ? 'bf16' : 'f16' });
    }
    return target.length * size;
  }

  /**
   * @internal A Float32Array for the whole of tensor `name` (readWeights): its dtype
   * and size are checked before anything is allocated (MICS_MISMATCH, MICS_INVALID_ARGUMENT).
   */
  allocate(name: string): Float32Array {
    const { file, tensor } = this.convertible(name);
    return allocateFloat32(tensor.numel, `${file.path}: tensor '${name}'`, 'read it in ranges with WeightsSource.readInto');
  }

  async close(): Promise<void> {
    for (const f of this.files) await f.close();
  }
}

/** Every tensor of a safetensors model as fp32, by name (for `init: {weights}` or your own use). */
export async function readWeights(location: string): Promise<Record<string, Float32Array>> {
  const source = await WeightsSource.open(location);
  try {
    const out: Record<string, Float32Array> = {};
    for (const t of source.tensors()) {
      const values = source.allocate(t.name);
      await source.readInto(t.name, 0, values);
      out[t.name] = values;
    }
    return out;
  } finally {
    await source.close();
  }
}

/**
 * Replaces the engine's weights with those of a safetensors model (names and shapes
 * must match the engine's parameters exactly); optimizer states and the step count
 * stay. Each rank reads only its slice's elements. Collective over the world; on
 * any failure every rank rejects and no engine changed.
 */
export async function importWeights(engine: CheckpointEngine, location: string): Promise<ImportResult> {
  await savesSettled(engine);
  const started = performance.now();
  const world = engine.groups.world;
  let source: WeightsSource | undefined;
  let bytesRead = 0;
  const read = await attempt(async () => {
    source = await WeightsSource.open(location);
    checkParameters(location, engine, source.tensors(), 'the file');
    const master = new Float32Array(engine.layout.shardNumel);
    const segments = engine.layout.segments(engine.groups.partition.rank).filter((s) => s.parameter);
    const src = source;
    await inParallel(segments, 4, async (s) => {
      const n = await src.readInto(s.parameter!.name, s.parameterOffset, master.subarray(s.offset, s.offset + s.length));
      bytesRead += n;
    });
    const state = await engine.exportState();
    state.tensors.master = master;
    return state;
  });
  try {
    await agree(world, 'importWeights', { error: read.error, value: null });
    await engine.importState(read.value!);
    return {
      files: (source as WeightsSource).files.map((f) => f.path),
      tensors: engine.layout.parameters.length,
      bytesRead,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await source?.close();
  }
}
