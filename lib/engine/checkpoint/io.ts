/**
 * File-system helpers for checkpoints: every call goes through fs.promises (libuv's
 * thread pool), so reads, writes and fsyncs never block the event loop; failures
 * become MicsErrors (MICS_SYSTEM naming the path, MICS_CORRUPT for a file shorter
 * than its header says).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MicsError, describeValue, invalidArgument } from '../../core/errors';

/** Largest single read or write request (libuv splits nothing; keep requests moderate). */
const IO_PIECE = 16 * 1024 * 1024;

/**
 * The most elements mics puts in one typed array it returns: Node 20's limit (later
 * versions allow more; one rule everywhere, checked before anything is allocated).
 */
export const MAX_ARRAY_ELEMENTS = 2 ** 32;

/**
 * A path argument: a non-empty string, else MICS_INVALID_ARGUMENT
 * "`what` <the value> is not valid: `hint`".
 */
export function checkPath(what: string, value: unknown, hint = 'give a path'): string {
  if (typeof value !== 'string' || value === '') throw invalidArgument(`${what} ${describeValue(value)} is not valid: ${hint}`);
  return value;
}

/** An fs failure as MICS_SYSTEM naming what was done to which path. */
export function fsError(err: unknown, what: string, file: string): MicsError {
  if (err instanceof MicsError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? ` (${e.code})` : '';
  return new MicsError(`${what} ${file}: ${e?.message ?? String(err)}${code}`, 'MICS_SYSTEM', { cause: err });
}

/** Runs an fs call, turning its rejection into fsError(what, file). */
export async function fsCall<T>(what: string, file: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw fsError(err, what, file);
  }
}

/**
 * `length` bytes of `view` from byte `offset`. Views of a piece, never of the whole:
 * one Uint8Array holds at most 2^32 bytes in Node 20, a Float32Array four times that.
 */
function bytesAt(view: ArrayBufferView, offset: number, length: number): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset + offset, length);
}

/** Writes all of `data` at `position` (several requests when large). */
export async function writeFully(handle: fs.promises.FileHandle, data: ArrayBufferView, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const length = Math.min(IO_PIECE, data.byteLength - done);
    const { bytesWritten } = await fsCall('write', file, () => handle.write(bytesAt(data, done, length), 0, length, position + done));
    if (bytesWritten <= 0) throw new MicsError(`write ${file}: the file system accepted no bytes at offset ${position + done}`, 'MICS_SYSTEM');
    done += bytesWritten;
  }
}

/**
 * Reads exactly `into.byteLength` bytes at `position`; a file that ends first is
 * MICS_CORRUPT ("truncated"), naming the file and the offsets.
 */
export async function readFully<T extends ArrayBufferView>(handle: fs.promises.FileHandle, into: T, position: number, file: string): Promise<T> {
  let done = 0;
  while (done < into.byteLength) {
    const length = Math.min(IO_PIECE, into.byteLength - done);
    const { bytesRead } = await fsCall('read', file, () => handle.read(bytesAt(into, done, length), 0, length, position + done));
    if (bytesRead === 0) {
      throw new MicsError(
        `${file} is truncated: it ends at byte ${position + done}, but ${position + into.byteLength} bytes are needed`,
        'MICS_CORRUPT',
      );
    }
    done += bytesRead;
  }
  return into;
}

/**
 * A zeroed Float32Array of `numel` elements for `what` (a tensor, a parameter):
 * MICS_INVALID_ARGUMENT past MAX_ARRAY_ELEMENTS (saying `instead` what to do),
 * MICS_SYSTEM when the memory cannot be had; never a RangeError.
 */
export function allocateFloat32(numel: number, what: string, instead: string): Float32Array {
  if (numel > MAX_ARRAY_ELEMENTS) {
    throw invalidArgument(`${what} has ${numel} elements, more than mics puts in one Float32Array (${MAX_ARRAY_ELEMENTS}): ${instead}`);
  }
  try {
    return new Float32Array(numel);
  } catch (err) {
    throw new MicsError(`${what}: cannot allocate ${numel * 4} bytes for its ${numel} elements (${(err as Error).message})`, 'MICS_SYSTEM', { cause: err });
  }
}

/**
 * Creates `dir` and its missing parents, one component at a time. Not
 * fs.promises.mkdir(dir, {recursive: true}): in Node 20 that never settles for some
 * paths (under /proc/self mkdir says ENOENT although the parent exists, and it retries
 * forever), and a save that never settles holds up every later save and load.
 * @throws MicsError MICS_SYSTEM naming `dir`, the component that cannot be created
 *   (or exists and is not a directory) and the system's error code.
 */
export async function makeDirectories(dir: string): Promise<void> {
  const isDirectory = async (at: string): Promise<boolean | undefined> => {
    try {
      return (await fs.promises.stat(at)).isDirectory();
    } catch {
      return undefined; // not there (or not reachable)
    }
  };
  const target = path.resolve(dir);
  if (await isDirectory(target)) return;
  const { root } = path.parse(target);
  let at = root;
  for (const part of target.slice(root.length).split(path.sep).filter((p) => p !== '')) {
    at = path.join(at, part);
    try {
      await fs.promises.mkdir(at);
    } catch (err) {
      // EEXIST, or a refusal (EACCES, EROFS) for one that exists: fine when it is a directory.
      const existing = await isDirectory(at);
      if (existing === true) continue;
      if (existing === false) throw new MicsError(`create directory ${dir}: ${at} exists and is not a directory (ENOTDIR)`, 'MICS_SYSTEM', { cause: err });
      const e = err as NodeJS.ErrnoException;
      const code = typeof e?.code === 'string' ? ` (${e.code})` : '';
      throw new MicsError(`create directory ${dir}: ${at === target ? '' : `cannot create ${at}: `}${e?.message ?? String(err)}${code}`, 'MICS_SYSTEM', { cause: err });
    }
  }
}

/** fsync of a directory, so that the names created or renamed in it are durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fsCall('open directory', dir, () => fs.promises.open(dir, 'r'));
  try {
    await fsCall('fsync directory', dir, () => handle.sync());
  } finally {
    await handle.close();
  }
}

/** Writes `content` to `file` (created or truncated) and fsyncs it. */
export async function writeFileSynced(file: string, content: string | Uint8Array): Promise<void> {
  const handle = await fsCall('create', file, () => fs.promises.open(file, 'w'));
  try {
    await writeFully(handle, typeof content === 'string' ? Buffer.from(content, 'utf8') : content, 0, file);
    await fsCall('fsync', file, () => handle.sync());
  } finally {
    await handle.close();
  }
}

/**
 * Replaces a small file atomically: written and fsynced under `temporary` (a name in
 * the same directory), renamed over `file`, then the directory fsynced. A crash
 * leaves the old content or the new one, never a mixture.
 */
export async function writeFileAtomic(file: string, content: string | Uint8Array, temporary: string): Promise<void> {
  await writeFileSynced(temporary, content);
  await fsCall('rename', temporary, () => fs.promises.rename(temporary, file));
  await fsyncDirectory(path.dirname(file));
}

/** Whether a path exists (any kind). */
export async function exists(file: string): Promise<boolean> {
  try {
    await fs.promises.lstat(file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw fsError(err, 'stat', file);
  }
}

/**
 * Runs `tasks` with at most `limit` in flight (libuv's pool has 4 threads by
 * default: a few concurrent requests keep the disk busy without starving others).
 */
export async function inParallel<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        await task(items[i], i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}
