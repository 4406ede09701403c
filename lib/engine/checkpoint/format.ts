/**
 * The on-disk format of a checkpoint (docs/engine.md, "Checkpoints"):
 *
 *   <dir>/latest                             the tag of the newest complete checkpoint
 *   <dir>/<tag>/index.json                   the index (CheckpointIndex)
 *   <dir>/<tag>/shard-<p>-of-<S>.safetensors one per slice p of the saving layout
 *
 * A shard file holds, for each saved state (`master`, then `exp_avg` and `exp_avg_sq`
 * or `momentum`) and each parameter with elements in slice p, one 1-D F32 tensor
 * named `<state>/<parameter name>`: the parameter's flat elements `[start, start +
 * length)` that slice p holds (the index lists them as the parameter's `pieces`).
 * Padding is not stored. Loading at another layout is offset arithmetic over the
 * pieces.
 */
import { MicsError, describeValue, valueText } from '../../core/errors';
import type { LossScalerState } from '../loss-scaler';
import { unitSegments, type ModelLayout } from '../layout';
import type { ResolvedOptimizer } from '../optimizer';
import type { ScheduleSpec } from '../schedule';
import type { Precision } from '../types';

export const CHECKPOINT_FORMAT = 'mics-checkpoint';
/** The index format this version writes and the newest it reads. */
export const CHECKPOINT_FORMAT_VERSION = 1;
export const INDEX_FILE = 'index.json';
export const LATEST_FILE = 'latest';
/** Tensors are checksummed in pieces of this many bytes, so a partial read can be verified. */
export const CHECKSUM_CHUNK_BYTES = 4 * 1024 * 1024;
/** The largest chunk an index may give (a reader's buffer can be a chunk long). */
const MAX_CHECKSUM_CHUNK_BYTES = 2 ** 30;

/** The saved fp32 states: master weights and the optimizer's buffers (PyTorch's names). */
export type StateName = 'master' | 'exp_avg' | 'exp_avg_sq' | 'momentum';

/** A JSON value (what a checkpoint's user state may hold). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The layout the checkpoint was saved at. */
export interface SavedLayout {
  /** W. */
  worldSize: number;
  /** S. */
  partitionSize: number;
  /** R = W / S. */
  replicationSize: number;
  /** G. */
  ranksPerNode: number;
  nodes: number;
  hierarchical: boolean;
  /** Shard alignment in elements. */
  alignment: number;
  units: { name: string; numel: number; paddedNumel: number; shardNumel: number; parameters: string[] }[];
}

/** Where a parameter's flat elements are: `[start, start + length)` in `file`, tensor `<state>/<name>`. */
export interface SavedPiece {
  file: string;
  start: number;
  length: number;
}

export interface SavedParameter {
  name: string;
  shape: number[];
  numel: number;
  unit: string;
  /** First element in its unit's flat buffer, at the saving layout. */
  offset: number;
  pieces: SavedPiece[];
}

export interface SavedFile {
  /** File name inside the checkpoint directory. */
  name: string;
  /** The slice it holds. */
  partitionRank: number;
  /** The world rank that wrote it. */
  writer: number;
  bytes: number;
  /** XXH64 of the file's first 8 + N bytes (length prefix and JSON header). */
  headerChecksum: string;
  /**
   * XXH64 of each CHECKSUM_CHUNK_BYTES piece of each tensor's bytes, by tensor name
   * (the last piece may be shorter; an empty tensor has one checksum, of no bytes).
   */
  chunks: Record<string, string[]>;
  /** XXH64 over headerChecksum and every chunk checksum in data order: one value for the whole file. */
  checksum: string;
}

/** index.json. */
export interface CheckpointIndex {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  /** The mics version that wrote it. */
  packageVersion: string;
  tag: string;
  /** Optimizer steps taken. */
  step: number;
  createdAt: string;
  layout: SavedLayout;
  precision: Precision;
  /** The dtype of each saved state's tensors (F32). */
  dtypes: Partial<Record<StateName, 'F32'>>;
  states: StateName[];
  optimizer: ResolvedOptimizer;
  accumulationSteps: number;
  /** The learning-rate schedule as data; null when it was a function. */
  schedule: ScheduleSpec | null;
  /** fp16's dynamic loss scaler; null otherwise. */
  lossScaler: LossScalerState | null;
  /** What the caller passed as `userState` (world rank 0's), or null. */
  userState: JsonValue | null;
  parameters: SavedParameter[];
  files: SavedFile[];
  /** Bytes of all shard files. */
  totalBytes: number;
  checksumChunkBytes: number;
}

/** `shard-00001-of-00004.safetensors`. */
export function shardFileName(partitionRank: number, partitionSize: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `shard-${pad(partitionRank)}-of-${pad(partitionSize)}.safetensors`;
}

/** The tensor holding `state` of `parameter` in a shard file. */
export function tensorName(state: StateName, parameter: string): string {
  return `${state}/${parameter}`;
}

/** The default tag of a checkpoint at `step`: `step-00000020`. */
export function defaultTag(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;

/** Checks a tag (a directory name): letters, digits, '.', '_', '-', not starting with '.' or '-'. */
export function checkTag(tag: unknown): string {
  if (typeof tag !== 'string' || !TAG_PATTERN.test(tag) || tag === LATEST_FILE) {
    throw new MicsError(
      `checkpoint tag ${describeValue(tag)} is not valid: use 1 to 200 letters, digits, '.', '_' or '-', not starting with '.' or '-', and not '${LATEST_FILE}'`,
      'MICS_INVALID_ARGUMENT',
    );
  }
  return tag;
}

/** The states an engine with this optimizer keeps (master first). */
export function statesOf(optimizer: ResolvedOptimizer): StateName[] {
  if (optimizer.type === 'adamw') return ['master', 'exp_avg', 'exp_avg_sq'];
  return optimizer.momentum !== 0 ? ['master', 'momentum'] : ['master'];
}

/** Each parameter's pieces at `layout` (S files, one per slice), in flat order. */
export function piecesOf(layout: ModelLayout): Map<string, SavedPiece[]> {
  const S = layout.partitionSize;
  const pieces = new Map<string, SavedPiece[]>(layout.parameters.map((p) => [p.name, []]));
  for (let p = 0; p < S; p++) {
    const file = shardFileName(p, S);
    for (const u of layout.units) {
      for (const s of unitSegments(u, p)) {
        if (s.parameter) pieces.get(s.parameter.name)?.push({ file, start: s.parameterOffset, length: s.length });
      }
    }
  }
  return pieces;
}

/** MICS_CORRUPT for a malformed index. */
function malformed(file: string, what: string): MicsError {
  return new MicsError(`${file} is not a valid checkpoint index: ${what}`, 'MICS_CORRUPT');
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

/**
 * Parses and checks index.json's text: a newer format version is MICS_UNAVAILABLE
 * (upgrade mics), a JSON file of another kind MICS_INVALID_ARGUMENT, anything
 * malformed or inconsistent MICS_CORRUPT; each names `file`.
 */
export function parseIndex(file: string, text: string): CheckpointIndex {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw malformed(file, `it is not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(file, 'it is not a JSON object');
  const index = value as Partial<CheckpointIndex>;
  if (index.format !== CHECKPOINT_FORMAT) {
    throw new MicsError(`${file} is not a mics checkpoint index (its "format" is ${describeValue(index.format)}, expected "${CHECKPOINT_FORMAT}")`, 'MICS_INVALID_ARGUMENT');
  }
  if (!isCount(index.formatVersion) || index.formatVersion < 1) throw malformed(file, `formatVersion ${describeValue(index.formatVersion)}`);
  if (index.formatVersion > CHECKPOINT_FORMAT_VERSION) {
    throw new MicsError(
      `${file} was written by mics ${valueText(index.packageVersion)} in checkpoint format ${index.formatVersion}; this mics reads format ` +
        `${CHECKPOINT_FORMAT_VERSION} and older: upgrade mics to load it`,
      'MICS_UNAVAILABLE',
    );
  }
  if (!isCount(index.step)) throw malformed(file, `step ${describeValue(index.step)}`);
  if (typeof index.tag !== 'string') throw malformed(file, 'no tag');
  const layout = index.layout;
  if (typeof layout !== 'object' || layout === null || !isCount(layout.worldSize) || !isCount(layout.partitionSize) || layout.partitionSize < 1) {
    throw malformed(file, 'no valid layout (worldSize, partitionSize)');
  }
  if (!Array.isArray(index.states) || index.states[0] !== 'master' || index.states.some((s) => !['master', 'exp_avg', 'exp_avg_sq', 'momentum'].includes(s))) {
    throw malformed(file, `states ${describeValue(index.states)}`);
  }
  if (!Array.isArray(index.files) || index.files.length !== layout.partitionSize) {
    throw malformed(file, `it lists ${Array.isArray(index.files) ? index.files.length : 'no'} files for partition size ${layout.partitionSize}`);
  }
  const files = new Set<string>();
  for (const f of index.files) {
    if (typeof f?.name !== 'string' || f.name.includes('/') || f.name.startsWith('.') || !isCount(f.bytes) || typeof f.headerChecksum !== 'string' || typeof f.chunks !== 'object' || f.chunks === null) {
      throw malformed(file, `file entry ${describeValue(f)}`);
    }
    files.add(f.name);
  }
  if (!Array.isArray(index.parameters) || index.parameters.length === 0) throw malformed(file, 'no parameters');
  const names = new Set<string>();
  // Bytes the pieces place in each file so far: never more than the file's "bytes", which
  // the reader checks against the file itself before it allocates for a parameter.
  const placed = new Map<string, number>();
  const fileBytes = new Map(index.files.map((f) => [f.name, f.bytes]));
  const elementBytes = 4 * index.states.length;
  for (const p of index.parameters) {
    if (typeof p?.name !== 'string' || names.has(p.name)) throw malformed(file, `parameter ${describeValue(p?.name)} (missing or listed twice)`);
    names.add(p.name);
    if (!Array.isArray(p.shape) || !p.shape.every(isCount) || !isCount(p.numel) || p.numel !== p.shape.reduce((a, b) => a * b, 1)) {
      throw malformed(file, `parameter '${p.name}': shape ${describeValue(p.shape)} and numel ${p.numel}`);
    }
    if (!Array.isArray(p.pieces)) throw malformed(file, `parameter '${p.name}' has no pieces`);
    let covered = 0;
    for (const piece of [...p.pieces].sort((a, b) => a.start - b.start)) {
      if (!files.has(piece?.file) || piece.start !== covered || !isCount(piece.length) || piece.length === 0) {
        throw malformed(file, `parameter '${p.name}': piece ${describeValue(piece)} (pieces must tile [0, ${p.numel}) in listed files)`);
      }
      covered += piece.length;
      const bytes = (placed.get(piece.file) ?? 0) + piece.length * elementBytes;
      if (bytes > (fileBytes.get(piece.file) as number)) {
        throw malformed(
          file,
          `parameter '${p.name}' (numel ${p.numel}) places ${bytes} bytes in ${piece.file} (${index.states.length} states of 4 bytes per element, with the parameters before it), ` +
            `more than the file's "bytes" (${fileBytes.get(piece.file)})`,
        );
      }
      placed.set(piece.file, bytes);
    }
    if (covered !== p.numel) throw malformed(file, `parameter '${p.name}': its pieces cover ${covered} of ${p.numel} elements`);
  }
  if (!isCount(index.checksumChunkBytes) || index.checksumChunkBytes === 0 || index.checksumChunkBytes % 8 !== 0 || index.checksumChunkBytes > MAX_CHECKSUM_CHUNK_BYTES) {
    // A read buffer can be one chunk long: bounded, so that a hostile index cannot ask for any size.
    throw malformed(file, `checksumChunkBytes ${describeValue(index.checksumChunkBytes)} (use a multiple of 8 in [8, ${MAX_CHECKSUM_CHUNK_BYTES}])`);
  }
  return index as CheckpointIndex;
}
