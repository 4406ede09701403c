/** Checkpoints (save, load at any layout, export and import of weights) and safetensors files. */
export { beginSave, saveCheckpoint } from './save';
export { loadCheckpoint } from './load';
export { Checkpoint, locateCheckpoint, type CheckpointLocation, type VerifyReport } from './reader';
export { exportCheckpoint, exportWeights, importWeights, readWeights, WeightsSource, MODEL_FILE, MODEL_INDEX_FILE } from './weights';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  CHECKSUM_CHUNK_BYTES,
  INDEX_FILE,
  LATEST_FILE,
  shardFileName,
  tensorName,
  defaultTag,
  type CheckpointIndex,
  type SavedLayout,
  type SavedParameter,
  type SavedPiece,
  type SavedFile,
  type StateName,
  type JsonValue,
} from './format';
export {
  SafetensorsFile,
  SafetensorsWriter,
  writeSafetensors,
  encodeSafetensorsHeader,
  parseSafetensorsHeader,
  SAFETENSORS_DTYPE_BYTES,
  MAX_HEADER_BYTES,
  type SafetensorsDType,
  type SafetensorsTensor,
  type SafetensorsTensorSpec,
  type SafetensorsHeader,
} from './safetensors';
export type { SaveOptions, SaveResult, PendingSave, LoadOptions, LoadResult, ExportOptions, ExportResult, ExportDType, ImportResult } from './types';
