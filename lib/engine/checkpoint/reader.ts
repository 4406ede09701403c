/**
 * Reading a checkpoint without an engine: find it (a tag, `latest`, or the
 * checkpoint's own directory), parse and check its index, and read any range of
 * any parameter's state from the shard files, each byte verified against the
 * index's checksums (every range is read in whole checksum chunks, so a resharded
 * load verifies exactly what it reads). The engine's load, the export and the
 * `mics checkpoint` command are built on it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MicsError, describeValue, invalidArgument, valueText } from '../../core/errors';
import { hostKernels } from '../../kernels/host';
import { allocateFloat32, checkPath, exists, fsCall, inParallel } from './io';
import { INDEX_FILE, LATEST_FILE, parseIndex, tensorName, type CheckpointIndex, type SavedFile, type SavedParameter, type StateName } from './format';
import { SafetensorsFile } from './safetensors';

/** Reads in flight at once (each up to READ_TASK_BYTES). */
const READ_PARALLELISM = 4;
/** The most bytes one read request covers (a whole number of checksum chunks). */
const READ_TASK_BYTES = 16 * 1024 * 1024;

/** Where a checkpoint is: its directory and tag. */
export interface CheckpointLocation {
  /** The checkpoint's own directory (holding index.json). */
  path: string;
  tag: string;
}

/**
 * Finds a checkpoint: `dir/<tag>` when a tag is given; else `dir` itself when it
 * holds index.json; else the tag named by `dir/latest`.
 * @throws MicsError MICS_INVALID_ARGUMENT when `dir` is missing or not a checkpoint
 *   directory; MICS_CORRUPT when `latest` names a checkpoint that is not there.
 */
export async function locateCheckpoint(dir: string, tag?: string): Promise<CheckpointLocation> {
  checkPath('checkpoint directory', dir);
  if (!(await exists(dir))) throw invalidArgument(`checkpoint directory ${dir} does not exist`);
  if (tag !== undefined) {
    if (typeof tag !== 'string' || tag === '' || tag.includes('/') || tag.startsWith('.')) throw invalidArgument(`checkpoint tag ${describeValue(tag)} is not valid`);
    const at = path.join(dir, tag);
    if (!(await exists(path.join(at, INDEX_FILE)))) {
      throw invalidArgument(`${dir} has no checkpoint '${tag}' (${at}/${INDEX_FILE} does not exist)${await listTags(dir)}`);
    }
    return { path: at, tag };
  }
  if (await exists(path.join(dir, INDEX_FILE))) return { path: dir, tag: path.basename(path.resolve(dir)) };
  const latest = path.join(dir, LATEST_FILE);
  if (!(await exists(latest))) {
    throw invalidArgument(`${dir} is not a checkpoint directory: it has neither a '${LATEST_FILE}' file nor an ${INDEX_FILE}${await listTags(dir)}`);
  }
  const named = (await fsCall('read', latest, () => fs.promises.readFile(latest, 'utf8'))).trim();
  if (named === '' || named.includes('/') || named.startsWith('.')) throw new MicsError(`${latest} is corrupt: it holds ${JSON.stringify(named.slice(0, 100))}, not a checkpoint tag`, 'MICS_CORRUPT');
  const at = path.join(dir, named);
  if (!(await exists(path.join(at, INDEX_FILE)))) {
    throw new MicsError(`${latest} names checkpoint '${named}', but ${at}/${INDEX_FILE} does not exist`, 'MICS_CORRUPT');
  }
  return { path: at, tag: named };
}

async function listTags(dir: string): Promise<string> {
  try {
    const entries = await fs.promises.readdir(dir);
    const tags: string[] = [];
    for (const e of entries) if (!e.startsWith('.') && (await exists(path.join(dir, e, INDEX_FILE)))) tags.push(e);
    return tags.length > 0 ? ` (checkpoints there: ${tags.sort().join(', ')})` : '';
  } catch {
    return '';
  }
}

/** What verify() found. */
export interface VerifyReport {
  tag: string;
  path: string;
  files: { name: string; bytes: number; ok: boolean; problem?: string }[];
  /** Bytes read and checked. */
  bytes: number;
  ok: boolean;
}

interface ReadTask {
  file: SavedFile;
  tensor: string;
  /** The tensor's length in bytes, as the index says. */
  tensorBytes: number;
  /** The checksum chunks covered: [firstChunk, lastChunk). */
  firstChunk: number;
  lastChunk: number;
  /** Bytes of the tensor read (chunk-aligned) and bytes wanted, both tensor-relative. */
  readBegin: number;
  readEnd: number;
  wantBegin: number;
  /** Where the wanted bytes go; undefined: read and verify only. */
  target?: Uint8Array;
}

/** An open checkpoint. */
export class Checkpoint {
  private readonly files = new Map<string, Promise<SafetensorsFile>>();
  private readonly fileInfo: Map<string, SavedFile>;
  private readonly parameterInfo: Map<string, SavedParameter>;
  private read_ = 0;

  private constructor(
    readonly path: string,
    readonly tag: string,
    readonly index: CheckpointIndex,
  ) {
    this.fileInfo = new Map(index.files.map((f) => [f.name, f]));
    this.parameterInfo = new Map(index.parameters.map((p) => [p.name, p]));
  }

  /** Opens the checkpoint `locateCheckpoint(dir, tag)` finds and checks its index. */
  static async open(dir: string, options: { tag?: string } = {}): Promise<Checkpoint> {
    const where = await locateCheckpoint(dir, options.tag);
    const file = path.join(where.path, INDEX_FILE);
    const index = parseIndex(file, await fsCall('read', file, () => fs.promises.readFile(file, 'utf8')));
    return new Checkpoint(where.path, where.tag, index);
  }

  /** Bytes read from shard files so far. */
  get bytesRead(): number {
    return this.read_;
  }

  /** The saved parameter `name`, or MICS_INVALID_ARGUMENT listing the checkpoint's. */
  parameter(name: string): SavedParameter {
    const p = this.parameterInfo.get(name);
    if (!p) throw invalidArgument(`checkpoint ${this.path} has no parameter '${name}'`);
    return p;
  }

  private checkState(state: StateName): void {
    if (!this.index.states.includes(state)) {
      throw invalidArgument(`checkpoint ${this.path} holds no '${state}' (it holds ${this.index.states.join(', ')})`);
    }
  }

  /** A shard file, opened once; its length and header are checked against the index. */
  private file(name: string): Promise<SafetensorsFile> {
    let opened = this.files.get(name);
    if (!opened) {
      opened = (async () => {
        const info = this.fileInfo.get(name);
        if (!info) throw new MicsError(`${path.join(this.path, INDEX_FILE)} lists no file '${name}'`, 'MICS_CORRUPT');
        const full = path.join(this.path, name);
        if (!(await exists(full))) throw new MicsError(`checkpoint ${this.path} is incomplete: ${name} is missing`, 'MICS_CORRUPT');
        const stat = await fsCall('stat', full, () => fs.promises.stat(full));
        if (stat.size !== info.bytes) {
          throw new MicsError(`${full} has ${stat.size} bytes but the index says ${info.bytes}${stat.size < info.bytes ? ' (truncated)' : ''}`, 'MICS_CORRUPT');
        }
        const file = await SafetensorsFile.open(full);
        const sum = await hostKernels.checksum(file.headerBytes);
        if (sum !== info.headerChecksum) {
          await file.close();
          throw new MicsError(`${full}: its header fails its checksum (index ${info.headerChecksum}, file ${sum}): the header was changed or corrupted`, 'MICS_CORRUPT');
        }
        this.read_ += file.headerBytes.length;
        return file;
      })();
      this.files.set(name, opened);
      opened.catch(() => this.files.delete(name));
    }
    return opened;
  }

  /**
   * Reads elements `[start, start + target.length)` of `state` of parameter `name`
   * into `target`, verifying every checksum chunk it touches.
   */
  async readInto(state: StateName, name: string, start: number, target: Float32Array): Promise<void> {
    await this.runTasks(this.plan(state, name, start, target));
  }

  /** The whole of `state` of parameter `name`. */
  async read(state: StateName, name: string): Promise<Float32Array> {
    this.checkState(state);
    const p = this.parameter(name);
    // The index's sizes are only as good as its files: open those holding the pieces (each
    // checked against its real length) before numel elements are allocated.
    for (const file of new Set(p.pieces.map((piece) => piece.file))) await this.file(file);
    const out = allocateFloat32(p.numel, `parameter '${name}' of checkpoint ${this.path}`, 'read it in ranges with Checkpoint.readInto');
    await this.readInto(state, name, 0, out);
    return out;
  }

  /** Every parameter's `state` (default the master weights) by name, in registry order. */
  async readAll(state: StateName = 'master'): Promise<Record<string, Float32Array>> {
    const out: Record<string, Float32Array> = {};
    for (const p of this.index.parameters) out[p.name] = await this.read(state, p.name);
    return out;
  }

  /** The read tasks for one range of one parameter's state. */
  plan(state: StateName, name: string, start: number, target: Float32Array): ReadTask[] {
    this.checkState(state);
    const p = this.parameter(name);
    if (!(target instanceof Float32Array)) throw invalidArgument(`read of '${name}': the target must be a Float32Array`);
    const end = start + target.length;
    if (!Number.isSafeInteger(start) || start < 0 || end > p.numel) {
      throw invalidArgument(`read of elements [${start}, ${end}) of '${name}': it has ${p.numel}`);
    }
    const chunk = this.index.checksumChunkBytes;
    const tasks: ReadTask[] = [];
    const tensor = tensorName(state, name);
    for (const piece of p.pieces) {
      const a = Math.max(start, piece.start);
      const b = Math.min(end, piece.start + piece.length);
      if (a >= b) continue;
      const file = this.fileInfo.get(piece.file) as SavedFile;
      const tensorBytes = piece.length * 4;
      const wantBegin = (a - piece.start) * 4;
      const wantEnd = (b - piece.start) * 4;
      // Whole chunks, at most READ_TASK_BYTES per task.
      const perTask = Math.max(1, Math.floor(READ_TASK_BYTES / chunk));
      const first = Math.floor(wantBegin / chunk);
      const last = Math.ceil(wantEnd / chunk);
      for (let c = first; c < last; c += perTask) {
        const cEnd = Math.min(last, c + perTask);
        const readBegin = c * chunk;
        const readEnd = Math.min(cEnd * chunk, tensorBytes);
        const from = Math.max(wantBegin, readBegin);
        const to = Math.min(wantEnd, readEnd);
        tasks.push({
          file,
          tensor,
          tensorBytes,
          firstChunk: c,
          lastChunk: cEnd,
          readBegin,
          readEnd,
          wantBegin: from,
          // A view of this task's bytes only: one Uint8Array over a large target would pass the 2^32-byte limit.
          target: new Uint8Array(target.buffer, target.byteOffset + (a - start) * 4 + (from - wantBegin), to - from),
        });
      }
    }
    return tasks;
  }

  /** Runs read tasks (a few in flight), verifying each chunk. */
  async runTasks(tasks: readonly ReadTask[]): Promise<void> {
    await inParallel(tasks, READ_PARALLELISM, (t) => this.runTask(t));
  }

  private async runTask(t: ReadTask): Promise<void> {
    const file = await this.file(t.file.name);
    const full = path.join(this.path, t.file.name);
    const info = file.header.tensor(t.tensor);
    if (info === undefined) throw new MicsError(`${full} has no tensor '${t.tensor}', which the index places there`, 'MICS_CORRUPT');
    const expected = t.file.chunks[t.tensor];
    if (info.dtype !== 'F32') throw new MicsError(`${full}: tensor '${t.tensor}' is ${info.dtype}, a checkpoint stores F32`, 'MICS_CORRUPT');
    if (!Array.isArray(expected)) throw new MicsError(`${path.join(this.path, INDEX_FILE)} has no checksums for tensor '${t.tensor}' of ${t.file.name}`, 'MICS_CORRUPT');
    if (info.byteLength !== t.tensorBytes) {
      throw new MicsError(`${full}: tensor '${t.tensor}' has ${info.byteLength} bytes, the index says ${t.tensorBytes}`, 'MICS_CORRUPT');
    }
    // Straight into the target when the wanted range is the read range; else through a buffer.
    const target = t.target;
    const direct = target !== undefined && t.wantBegin === t.readBegin && target.length === t.readEnd - t.readBegin;
    const buffer = direct ? target : new Uint8Array(t.readEnd - t.readBegin);
    await file.read(t.tensor, t.readBegin, buffer);
    this.read_ += buffer.length;
    const chunk = this.index.checksumChunkBytes;
    for (let c = t.firstChunk; c < t.lastChunk; c++) {
      const from = c * chunk - t.readBegin;
      const piece = buffer.subarray(from, Math.min(from + chunk, buffer.length));
      const sum = await hostKernels.checksum(piece);
      if (sum !== expected[c]) {
        throw new MicsError(
          `${full}: bytes [${c * chunk}, ${c * chunk + piece.length}) of tensor '${t.tensor}' fail their checksum (index ${valueText(expected[c])}, file ${sum}): the file is corrupt`,
          'MICS_CORRUPT',
        );
      }
    }
    if (target !== undefined && !direct) target.set(buffer.subarray(t.wantBegin - t.readBegin, t.wantBegin - t.readBegin + target.length));
  }

  /**
   * Reads every byte of every shard file and checks it against the index: lengths,
   * headers, every tensor a state of a parameter names, every checksum chunk.
   * Problems are reported per file (never thrown for a bad file).
   */
  async verify(): Promise<VerifyReport> {
    const report: VerifyReport = { tag: this.tag, path: this.path, files: [], bytes: 0, ok: true };
    const before = this.read_;
    for (const info of this.index.files) {
      try {
        const file = await this.file(info.name);
        const expectedTensors = new Set(Object.keys(info.chunks));
        for (const t of file.header.tensors) {
          if (!expectedTensors.has(t.name)) throw new MicsError(`${path.join(this.path, info.name)} holds tensor '${t.name}', which the index does not list`, 'MICS_CORRUPT');
        }
        for (const name of expectedTensors) {
          const t = file.tensor(name);
          const chunks = Math.max(1, Math.ceil(t.byteLength / this.index.checksumChunkBytes));
          if (info.chunks[name].length !== chunks) throw new MicsError(`${path.join(this.path, INDEX_FILE)}: tensor '${name}' of ${info.name} has ${info.chunks[name].length} checksums, its ${t.byteLength} bytes need ${chunks}`, 'MICS_CORRUPT');
        }
        const tasks: ReadTask[] = [];
        for (const name of expectedTensors) {
          const t = file.tensor(name);
          const perTask = Math.max(1, Math.floor(READ_TASK_BYTES / this.index.checksumChunkBytes));
          const chunks = Math.max(1, Math.ceil(t.byteLength / this.index.checksumChunkBytes));
          for (let c = 0; c < chunks; c += perTask) {
            const cEnd = Math.min(chunks, c + perTask);
            const readBegin = c * this.index.checksumChunkBytes;
            const readEnd = Math.min(cEnd * this.index.checksumChunkBytes, t.byteLength);
            tasks.push({ file: info, tensor: name, tensorBytes: t.byteLength, firstChunk: c, lastChunk: cEnd, readBegin, readEnd, wantBegin: readBegin });
          }
        }
        await this.runTasks(tasks);
        report.files.push({ name: info.name, bytes: info.bytes, ok: true });
      } catch (err) {
        report.ok = false;
        report.files.push({ name: info.name, bytes: info.bytes, ok: false, problem: err instanceof Error ? err.message : String(err) });
      }
    }
    report.bytes = this.read_ - before;
    return report;
  }

  /** Closes the shard files. */
  async close(): Promise<void> {
    const opened = [...this.files.values()];
    this.files.clear();
    for (const f of opened) {
      try {
        await (await f).close();
      } catch {
        // failed to open: nothing to close
      }
    }
  }
}
