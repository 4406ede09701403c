/**
 * File-system helpers for checkpoints: every call goes through fs.promises (libuv's
 * thread pool), so reads, writes and fsyncs never block the event loop; failures
 * become MicsErrors (MICS_SYSTEM naming the path, MICS_CORRUPT for a file shorter
 * than its header says).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MicsError } from '../../core/errors';

/** Largest single read or write request (libuv splits nothing; keep requests moderate). */
const IO_PIECE = 16 * 1024 * 1024;

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

/** The bytes of any TypedArray or DataView, as a Uint8Array over the same memory. */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Writes all of `data` at `position` (several requests when large). */
export async function writeFully(handle: fs.promises.FileHandle, data: ArrayBufferView, position: number, file: string): Promise<void> {
  const bytes = bytesOf(data);
  let done = 0;
  while (done < bytes.length) {
    const length = Math.min(IO_PIECE, bytes.length - done);
    const { bytesWritten } = await fsCall('write', file, () => handle.write(bytes, done, length, position + done));
    if (bytesWritten <= 0) throw new MicsError(`write ${file}: the file system accepted no bytes at offset ${position + done}`, 'MICS_SYSTEM');
    done += bytesWritten;
  }
}

/**
 * Reads exactly `into.length` bytes at `position`; a file that ends first is
 * MICS_CORRUPT ("truncated"), naming the file and the offsets.
 */
export async function readFully(handle: fs.promises.FileHandle, into: Uint8Array, position: number, file: string): Promise<Uint8Array> {
  let done = 0;
  while (done < into.length) {
    const length = Math.min(IO_PIECE, into.length - done);
    const { bytesRead } = await fsCall('read', file, () => handle.read(into, done, length, position + done));
    if (bytesRead === 0) {
      throw new MicsError(
        `${file} is truncated: it ends at byte ${position + done}, but ${position + into.length} bytes are needed`,
        'MICS_CORRUPT',
      );
    }
    done += bytesRead;
  }
  return into;
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
