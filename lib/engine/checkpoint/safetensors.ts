/**
 * safetensors files (the format of huggingface/safetensors), read and written in
 * TypeScript over fs.promises. A file is: an unsigned 64-bit little-endian N; N bytes
 * of UTF-8 JSON mapping each tensor name to `{dtype, shape, data_offsets: [begin,
 * end)}` (offsets relative to the data section), plus an optional `__metadata__` map
 * of strings; then the data section: every tensor's bytes, row-major, little-endian,
 * back to back. The writer pads the JSON with spaces so that the data starts at a
 * multiple of 8, as the reference writer does.
 *
 * The reader checks what the reference implementation checks: N inside the file and
 * at most 100 MB, a JSON object without duplicate names, known dtypes, shapes whose
 * byte counts match their offsets, tensors that cover the data section without holes
 * or overlaps, and a file exactly as long as the header says. Each failure is a
 * MicsError MICS_CORRUPT naming the file and what is wrong.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { MicsError, describeValue, invalidArgument, valueText } from '../../core/errors';
import { checkPath, fsCall, readFully, writeFully } from './io';

/** The dtype names of the format. */
export type SafetensorsDType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL'
  | 'F8_E4M3'
  | 'F8_E5M2';

/** Bytes per element of each dtype. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
});

/** The largest header the format allows (the reference's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** A tensor to write: name, dtype and shape. */
export interface SafetensorsTensorSpec {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
}

/** A tensor of a file: where its bytes are. */
export interface SafetensorsTensor extends SafetensorsTensorSpec {
  /** Product of the shape. */
  readonly numel: number;
  /** First byte in the file (8 + N + data_offsets[0]). */
  readonly position: number;
  readonly byteLength: number;
}

/** A parsed header. */
export interface SafetensorsHeader {
  /** The path it was read from (for messages). */
  readonly file: string;
  /** 8 + N: where the data section starts. */
  readonly dataStart: number;
  /** The whole file's length. */
  readonly fileBytes: number;
  /** The tensors, in data order. */
  readonly tensors: readonly SafetensorsTensor[];
  readonly metadata: Readonly<Record<string, string>>;
  /** A tensor by name. */
  tensor(name: string): SafetensorsTensor | undefined;
}

function assertLittleEndian(): void {
  if (os.endianness() !== 'LE') {
    throw new MicsError('safetensors: this machine is big-endian; the format stores little-endian data and mics reads it only on little-endian machines', 'MICS_UNAVAILABLE');
  }
}

function shapeNumel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes per element of `dtype`, or undefined for a name that is no dtype (also 'constructor' and the like). */
function dtypeBytes(dtype: unknown): number | undefined {
  return typeof dtype === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, dtype) ? SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDType] : undefined;
}

/**
 * The header of a file holding `tensors` in that order: the bytes (length prefix,
 * JSON, space padding to a multiple of 8) and where each tensor goes.
 * @throws MicsError MICS_INVALID_ARGUMENT for duplicate or reserved names, unknown
 *   dtypes, bad shapes or non-string metadata.
 */
export function encodeSafetensorsHeader(
  tensors: readonly SafetensorsTensorSpec[],
  metadata: Readonly<Record<string, string>> = {},
): { bytes: Uint8Array; tensors: SafetensorsTensor[]; fileBytes: number } {
  // Checked here, where every writer starts, so that no call fails with a TypeError.
  if (!Array.isArray(tensors as unknown)) throw invalidArgument(`safetensors: tensors ${describeValue(tensors)} is not valid: use an array of {name, dtype, shape, data}`);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata as unknown)) {
    throw invalidArgument(`safetensors: metadata ${describeValue(metadata)} is not valid: use an object of strings (or leave it out)`);
  }
  tensors.forEach((t, i) => {
    if (typeof t !== 'object' || t === null) throw invalidArgument(`safetensors: tensor ${i} (${describeValue(t)}) is not valid: use {name, dtype, shape, data}`);
  });
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw invalidArgument(`safetensors metadata '${k}' is ${typeof v}: metadata values must be strings`);
    }
    json.__metadata__ = metadata;
  }
  let offset = 0;
  const ranges: { spec: SafetensorsTensorSpec; begin: number; end: number; numel: number }[] = [];
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__') {
      throw invalidArgument(`safetensors tensor name ${describeValue(t.name)} is not valid: use a non-empty string other than __metadata__`);
    }
    if (Object.prototype.hasOwnProperty.call(json, t.name)) throw invalidArgument(`safetensors tensor '${t.name}' is listed twice: names must be unique`);
    const size = dtypeBytes(t.dtype);
    if (size === undefined) throw invalidArgument(`safetensors tensor '${t.name}': dtype ${valueText(t.dtype)} is not one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw invalidArgument(`safetensors tensor '${t.name}': shape ${describeValue(t.shape)} is not valid: use integers >= 0`);
    }
    const numel = shapeNumel(t.shape);
    const begin = offset;
    offset += numel * size;
    if (!Number.isSafeInteger(offset)) throw invalidArgument(`safetensors tensor '${t.name}': shape [${t.shape.join(', ')}] puts the data past ${Number.MAX_SAFE_INTEGER} bytes, more than a file holds`);
    json[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [begin, offset] };
    ranges.push({ spec: t, begin, end: offset, numel });
  }
  const text = Buffer.from(JSON.stringify(json), 'utf8');
  const n = Math.ceil(text.length / 8) * 8;
  if (n > MAX_HEADER_BYTES) throw invalidArgument(`safetensors header of ${n} bytes is larger than the format's limit of ${MAX_HEADER_BYTES}: split the tensors over several files`);
  const bytes = Buffer.alloc(8 + n, 0x20);
  bytes.writeBigUInt64LE(BigInt(n), 0);
  text.copy(bytes, 8);
  const dataStart = 8 + n;
  return {
    bytes,
    fileBytes: dataStart + offset,
    tensors: ranges.map((r) => ({ name: r.spec.name, dtype: r.spec.dtype, shape: [...r.spec.shape], numel: r.numel, position: dataStart + r.begin, byteLength: r.end - r.begin })),
  };
}

/** The names of the top-level members of a JSON object text, in order, duplicates kept (JSON.parse drops them). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        keys.push(JSON.parse(text.slice(i, j + 1)) as string);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

/**
 * Parses and checks a header: `head` holds the file's first 8 + N bytes, `fileBytes`
 * its length.
 * @throws MicsError MICS_CORRUPT naming `file` and what is wrong.
 */
export function parseSafetensorsHeader(file: string, head: Uint8Array, fileBytes: number): SafetensorsHeader {
  const corrupt = (what: string): MicsError => new MicsError(`${file} is not a valid safetensors file: ${what}`, 'MICS_CORRUPT');
  if (fileBytes < 8 || head.length < 8) throw corrupt(`it has ${fileBytes} bytes, fewer than the 8-byte header length`);
  const n = Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw corrupt(`the header length is ${n} bytes, more than the format's limit of ${MAX_HEADER_BYTES}`);
  if (8n + n > BigInt(fileBytes)) throw corrupt(`the header length is ${n} bytes but the file has only ${fileBytes} bytes (truncated?)`);
  const dataStart = 8 + Number(n);
  if (head.length < dataStart) throw corrupt(`only ${head.length} of the header's ${dataStart} bytes were given`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, dataStart));
  } catch {
    throw corrupt('the header is not UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw corrupt(`the header is not JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw corrupt('the header is not a JSON object');
  const keys = topLevelKeys(text);
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) throw corrupt(`the header names '${k}' twice`);
    seen.add(k);
  }
  const record = parsed as Record<string, unknown>;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensor[] = [];
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(record)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
        throw corrupt('__metadata__ is not a map of strings');
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== 'object' || t === null) throw corrupt(`tensor '${name}' is not an object`);
    const size = dtypeBytes(t.dtype);
    if (typeof t.dtype !== 'string' || size === undefined) throw corrupt(`tensor '${name}' has dtype ${describeValue(t.dtype)}, not one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) throw corrupt(`tensor '${name}' has shape ${describeValue(t.shape)}`);
    const offsets = t.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || (o as number) < 0) || offsets[0] > offsets[1]) {
      throw corrupt(`tensor '${name}' has data_offsets ${describeValue(offsets)}`);
    }
    const shape = t.shape as number[];
    const numel = shapeNumel(shape);
    const [begin, end] = offsets as [number, number];
    if (end - begin !== numel * size) {
      throw corrupt(`tensor '${name}' (${t.dtype} [${shape.join(', ')}]) needs ${numel * size} bytes but data_offsets [${begin}, ${end}) hold ${end - begin}`);
    }
    ranges.push({ name, begin, end });
    tensors.push({ name, dtype: t.dtype as SafetensorsDType, shape, numel, position: dataStart + begin, byteLength: end - begin });
  }
  // The reference requires the tensors to tile the data section exactly.
  const order = tensors.map((t, i) => ({ t, r: ranges[i] })).sort((a, b) => a.r.begin - b.r.begin || a.r.end - b.r.end);
  let cursor = 0;
  for (const { r } of order) {
    if (r.begin !== cursor) {
      throw corrupt(
        r.begin < cursor ? `tensor '${r.name}' at [${r.begin}, ${r.end}) overlaps the tensor before it (which ends at ${cursor})` : `the data section has a hole at bytes [${cursor}, ${r.begin})`,
      );
    }
    cursor = r.end;
  }
  const expected = dataStart + cursor;
  if (fileBytes < expected) throw corrupt(`it is truncated: the header needs ${expected} bytes, the file has ${fileBytes}`);
  if (fileBytes > expected) throw corrupt(`it has ${fileBytes - expected} bytes after the last tensor (the header accounts for ${expected})`);
  const sorted = order.map((o) => o.t);
  const byName = new Map(sorted.map((t) => [t.name, t]));
  return Object.freeze({
    file,
    dataStart,
    fileBytes,
    tensors: Object.freeze(sorted),
    metadata: Object.freeze({ ...metadata }),
    tensor: (name: string) => byName.get(name),
  });
}

/** An open safetensors file: its header, and reads of byte ranges of its tensors. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly handle: fs.promises.FileHandle,
    readonly header: SafetensorsHeader,
    /** The file's first 8 + N bytes, as read (for checksums). */
    readonly headerBytes: Uint8Array,
  ) {}

  /**
   * Opens `file` and parses its header.
   * @throws MicsError MICS_CORRUPT (bad header, wrong length) or MICS_SYSTEM (cannot open).
   */
  static async open(file: string): Promise<SafetensorsFile> {
    assertLittleEndian();
    checkPath('safetensors: file', file);
    const handle = await fsCall('open', file, () => fs.promises.open(file, 'r'));
    try {
      const { size } = await fsCall('stat', file, () => handle.stat());
      if (size < 8) throw new MicsError(`${file} is not a valid safetensors file: it has ${size} bytes, fewer than the 8-byte header length`, 'MICS_CORRUPT');
      const prefix = await readFully(handle, new Uint8Array(8), 0, file);
      const n = Buffer.from(prefix).readBigUInt64LE(0);
      // A length past the limit or the file: the parser names it (it throws for these).
      if (n > BigInt(MAX_HEADER_BYTES) || 8n + n > BigInt(size)) parseSafetensorsHeader(file, prefix, size);
      const head = new Uint8Array(8 + Number(n));
      head.set(prefix);
      await readFully(handle, head.subarray(8), 8, file);
      return new SafetensorsFile(file, handle, parseSafetensorsHeader(file, head, size), head);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** The tensor `name`, or MICS_INVALID_ARGUMENT naming the file's tensors. */
  tensor(name: string): SafetensorsTensor {
    const t = this.header.tensor(name);
    if (t === undefined) {
      const names = this.header.tensors.map((x) => x.name);
      throw invalidArgument(`${this.path} has no tensor '${name}' (it has ${names.length > 8 ? `${names.slice(0, 8).join(', ')}, ...` : names.join(', ')})`);
    }
    return t;
  }

  /** Reads `into.byteLength` bytes starting `byteOffset` bytes into tensor `name`. */
  async read<T extends ArrayBufferView>(name: string, byteOffset: number, into: T): Promise<T> {
    const t = this.tensor(name);
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + into.byteLength > t.byteLength) {
      throw invalidArgument(`read of bytes [${byteOffset}, ${byteOffset + into.byteLength}) of tensor '${name}' in ${this.path}: the tensor has ${t.byteLength} bytes`);
    }
    return readFully(this.handle, into, t.position + byteOffset, this.path);
  }

  /** A whole tensor's bytes. */
  async readTensor(name: string): Promise<Uint8Array> {
    const t = this.tensor(name);
    return this.read(name, 0, new Uint8Array(t.byteLength));
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/**
 * Writes a safetensors file in order: create() writes the header, write() appends
 * the data section's bytes (tensor after tensor), close() checks that every byte
 * came, fsyncs when asked and closes.
 */
export class SafetensorsWriter {
  private written = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: fs.promises.FileHandle,
    readonly tensors: readonly SafetensorsTensor[],
    /** The header as written (8 + N bytes). */
    readonly headerBytes: Uint8Array,
    /** Bytes the finished file has. */
    readonly fileBytes: number,
  ) {}

  /** Creates (or truncates) `file` and writes the header of `tensors`. */
  static async create(file: string, tensors: readonly SafetensorsTensorSpec[], metadata?: Readonly<Record<string, string>>): Promise<SafetensorsWriter> {
    assertLittleEndian();
    checkPath('safetensors: file', file);
    return SafetensorsWriter.withHeader(file, encodeSafetensorsHeader(tensors, metadata));
  }

  /** @internal create() with the path checked and the header encoded already (writeSafetensors checks more first). */
  static async withHeader(file: string, header: ReturnType<typeof encodeSafetensorsHeader>): Promise<SafetensorsWriter> {
    const handle = await fsCall('create', file, () => fs.promises.open(file, 'w'));
    try {
      await writeFully(handle, header.bytes, 0, file);
    } catch (err) {
      await handle.close();
      throw err;
    }
    const writer = new SafetensorsWriter(file, handle, header.tensors, header.bytes, header.fileBytes);
    writer.written = header.bytes.length;
    return writer;
  }

  /** Appends `data` (the next bytes of the data section). The caller must not change it until this resolves. */
  async write(data: ArrayBufferView): Promise<void> {
    if (!ArrayBuffer.isView(data)) throw invalidArgument(`write to ${this.path}: data ${describeValue(data)} is not valid: use a TypedArray or DataView`);
    if (this.closed) throw invalidArgument(`write to ${this.path}: the writer is closed`);
    if (this.written + data.byteLength > this.fileBytes) {
      throw invalidArgument(`write to ${this.path}: ${data.byteLength} more bytes would pass the ${this.fileBytes} the header describes`);
    }
    const at = this.written;
    this.written += data.byteLength;
    await writeFully(this.handle, data, at, this.path);
  }

  /** Checks that the data is complete, fsyncs (`sync`, default true) and closes. */
  async close(options: { sync?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.written !== this.fileBytes) {
        throw invalidArgument(`${this.path}: ${this.written} of the ${this.fileBytes} bytes the header describes were written`);
      }
      if (options.sync ?? true) await fsCall('fsync', this.path, () => this.handle.sync());
    } finally {
      await this.handle.close();
    }
  }

  /** Closes without checking (after a failure). */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => undefined);
  }
}

/** Writes a whole file from in-memory tensors (each `data` holds exactly its tensor's bytes), fsynced. */
export async function writeSafetensors(
  file: string,
  tensors: readonly (SafetensorsTensorSpec & { data: ArrayBufferView })[],
  metadata?: Readonly<Record<string, string>>,
): Promise<{ bytes: number }> {
  // Before the file is created: bad input leaves nothing behind.
  assertLittleEndian();
  checkPath('safetensors: file', file);
  const header = encodeSafetensorsHeader(tensors, metadata);
  for (const t of tensors) {
    if (!ArrayBuffer.isView(t.data)) throw invalidArgument(`safetensors tensor '${valueText(t.name)}': data ${describeValue(t.data)} is not valid: use a TypedArray or DataView`);
  }
  const writer = await SafetensorsWriter.withHeader(file, header);
  try {
    for (let i = 0; i < tensors.length; i++) {
      const want = writer.tensors[i].byteLength;
      if (tensors[i].data.byteLength !== want) {
        throw invalidArgument(`tensor '${tensors[i].name}': data has ${tensors[i].data.byteLength} bytes, its dtype and shape need ${want}`);
      }
      await writer.write(tensors[i].data);
    }
    await writer.close();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return { bytes: writer.fileBytes };
}
