/** Options and results of checkpoint save, load, export and import. */
import type { MicsGroups } from '../../comm/mics-groups';
import type { ModelLayout } from '../layout';
import type { ResolvedOptimizer } from '../optimizer';
import type { ScheduleSpec } from '../schedule';
import type { EngineState, Precision } from '../types';
import type { JsonValue, SavedLayout } from './format';

/** @internal What checkpoints use of an engine. */
export interface CheckpointEngine {
  readonly groups: MicsGroups;
  readonly layout: ModelLayout;
  readonly optimizer: ResolvedOptimizer;
  readonly schedule: ScheduleSpec | undefined;
  readonly precision: Precision;
  readonly accumulationSteps: number;
  readonly stepCount: number;
  readonly microStep: number;
  exportState(): Promise<EngineState>;
  importState(state: EngineState): Promise<void>;
  fullParameters(): Promise<Record<string, Float32Array>>;
}

/** Options of `engine.save(dir, options)`. */
export interface SaveOptions {
  /** The checkpoint's directory name inside `dir` (default `step-<8-digit step>`): letters, digits, '.', '_', '-'. */
  tag?: string;
  /** After the commit, delete all but the newest `keep` checkpoints of `dir` (by save time). Default: keep all. */
  keep?: number;
  /**
   * Any JSON-serialisable value of yours (the data sampler's position, RNG seeds):
   * world rank 0's is stored and `load` returns it.
   */
  userState?: unknown;
  /** How long ranks wait for the slowest writer, in ms (default 30 minutes). */
  timeoutMs?: number;
}

/** What a save resolves to (on every rank). */
export interface SaveResult {
  tag: string;
  /** The checkpoint's directory (`dir/tag`). */
  path: string;
  /** Optimizer steps taken when the state was copied. */
  step: number;
  /** Bytes of every shard file together. */
  bytes: number;
  /** Bytes this rank wrote (0 on ranks other than replication rank 0). */
  bytesWritten: number;
  /** Seconds to copy this rank's state to host memory (training may go on after this). */
  snapshotSeconds: number;
  /** Seconds this rank spent writing and fsyncing its shard file (0 when it writes none). */
  writeSeconds: number;
  /** Seconds from the call until the checkpoint was committed and `latest` pointed at it. */
  seconds: number;
}

/** What `engine.beginSave` resolves to once the state is copied. */
export interface PendingSave {
  tag: string;
  step: number;
  snapshotSeconds: number;
  /** Settles when the checkpoint is committed (or the save failed, on every rank). */
  done: Promise<SaveResult>;
}

/** Options of `engine.load(dir, options)`. */
export interface LoadOptions {
  /** Which checkpoint of `dir` (default: the one `dir/latest` names; or `dir` itself when it holds index.json). */
  tag?: string;
  /**
   * Take only the fp32 master weights; keep this engine's optimizer states, step
   * count and loss scaler (fine-tuning from a checkpoint, or another optimizer).
   */
  weightsOnly?: boolean;
}

/** What a load resolves to (on every rank). */
export interface LoadResult {
  tag: string;
  path: string;
  /** The step count the engine now has. */
  step: number;
  /** The saved user state (null when none was given). */
  userState: JsonValue | null;
  /** The layout it was saved at. */
  saved: Pick<SavedLayout, 'worldSize' | 'partitionSize' | 'replicationSize' | 'ranksPerNode' | 'nodes'>;
  /** True when this engine's slices differ from the saved ones (the elements were cut anew). */
  resharded: boolean;
  /** Bytes this rank read. */
  bytesRead: number;
  seconds: number;
}

/** The dtype an export writes. */
export type ExportDType = 'f32' | 'bf16';

/** Options of exportCheckpoint / `engine.exportWeights`. */
export interface ExportOptions {
  /** 'f32' (default) or 'bf16' (rounded to nearest even). */
  dtype?: ExportDType;
  /**
   * Above this many bytes of tensors, write `model-0000k-of-0000n.safetensors` files
   * of at most this size plus `model.safetensors.index.json` (default 5 GB, as
   * Hugging Face's save_pretrained). A tensor larger than this gets a file of its own.
   */
  maxShardBytes?: number;
  /** Which checkpoint (exportCheckpoint only; default latest). */
  tag?: string;
}

/** What an export wrote. */
export interface ExportResult {
  /** The files written, in `dir`. */
  files: string[];
  tensors: number;
  /** Bytes of the .safetensors files. */
  bytes: number;
  seconds: number;
}

/** What an import read. */
export interface ImportResult {
  /** The .safetensors files opened. */
  files: string[];
  tensors: number;
  /** Bytes this rank read. */
  bytesRead: number;
  seconds: number;
}
