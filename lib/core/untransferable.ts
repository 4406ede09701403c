/**
 * Keeping an ordinary ArrayBuffer attached while native work uses its memory on
 * another thread. Transferring a buffer (postMessage, structuredClone with
 * `transfer`) detaches it, and its memory is freed once the receiving side drops it,
 * even while an op still reads or writes it: a use after free in the user's process.
 * Node-API cannot pin a buffer for the length of an op, so a buffer that an op uses
 * asynchronously is marked untransferable, as Node marks its own pooled Buffers: from
 * then on a transfer copies it (Node 20) or is refused (later versions). allocHost
 * memory is untransferable from the start.
 */
import { markAsUntransferable } from 'node:worker_threads';

/** Marks the ArrayBuffer behind `view` (a TypedArray or DataView) untransferable; anything else is left alone. */
export function keepAttached(view: unknown): void {
  if (ArrayBuffer.isView(view)) markAsUntransferable(view.buffer);
}
