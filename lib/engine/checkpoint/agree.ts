/**
 * One phase of a collective file operation ends with every rank telling every other
 * rank how it went: a small all-gather over the world of each rank's JSON outcome
 * (a value, or the error it met). A failure on any rank then fails the phase on
 * every rank at once, naming the rank and its error, instead of leaving the others
 * waiting for a rank that will never come (the same ops on the same communicator, in
 * the same order, on host or device buffers alike).
 */
import type { Communicator, CollectiveOptions } from '../../comm/communicator';
import type { Tensor } from '../../comm/tensor';
import { DeviceTensor } from '../../cuda/device-tensor';
import { MicsError, toMicsError, type MicsErrorCode } from '../../core/errors';
import type { JsonValue } from './format';

type Outcome = { value: JsonValue } | { error: { message: string; code: MicsErrorCode } };

/** All-gathers one i32 per rank, or one byte string per rank padded to `width`: host or device buffers as the backend needs. */
async function gather<T extends Int32Array | Uint8Array>(world: Communicator, mine: T, dtype: 'i32' | 'u8', options: CollectiveOptions): Promise<T> {
  const size = world.size;
  if (world.backend !== 'nccl') {
    const all = new (mine.constructor as new (n: number) => T)(mine.length * size);
    await world.allGather(mine as Tensor, all as Tensor, options);
    return all;
  }
  const send = DeviceTensor.fromHost(dtype, mine as never, world.device);
  const recv = DeviceTensor.alloc(dtype, mine.length * size, world.device);
  try {
    await world.allGather(send, recv, options);
    return recv.download() as unknown as T;
  } finally {
    send.release();
    recv.release();
  }
}

/**
 * Exchanges this rank's outcome of `phase` with every rank of `world` and returns
 * every rank's value (index = world rank). When any rank failed: this rank's own
 * error is rethrown as it was; otherwise a MicsError with the failed rank's code,
 * naming it (`peer`) and its message. When the exchange itself fails (a rank died),
 * that failure is thrown, or this rank's own error if it had one.
 */
export async function agree(world: Communicator, phase: string, outcome: { value?: JsonValue; error?: unknown }, options: CollectiveOptions = {}): Promise<JsonValue[]> {
  const own = outcome.error === undefined ? undefined : toMicsError(outcome.error);
  if (world.size === 1) {
    if (own) throw outcome.error;
    return [outcome.value ?? null];
  }
  const payload: Outcome = own ? { error: { message: own.message, code: own.code } } : { value: outcome.value ?? null };
  const bytes = new TextEncoder().encode(JSON.stringify(payload));
  let all: Uint8Array;
  let lengths: Int32Array;
  try {
    lengths = await gather(world, Int32Array.of(bytes.length), 'i32', options);
    const width = Math.max(...lengths);
    const padded = new Uint8Array(width);
    padded.set(bytes);
    all = await gather(world, padded, 'u8', options);
  } catch (err) {
    if (own) throw outcome.error;
    throw toMicsError(err);
  }
  if (own) throw outcome.error;
  const width = all.length / world.size;
  const decoder = new TextDecoder();
  const outcomes = Array.from(lengths, (n, r) => JSON.parse(decoder.decode(all.subarray(r * width, r * width + n))) as Outcome);
  const failed = outcomes.findIndex((o) => 'error' in o);
  if (failed >= 0) {
    const { message, code } = (outcomes[failed] as { error: { message: string; code: MicsErrorCode } }).error;
    throw new MicsError(`${phase}: world rank ${failed} failed: ${message}`, code, { rank: world.rank, group: world.name, op: phase, peer: failed, worldPeer: failed });
  }
  return outcomes.map((o) => (o as { value: JsonValue }).value);
}

/** Runs `fn`, returning its value or the error it threw (to hand to agree()). */
export async function attempt<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await fn() };
  } catch (error) {
    return { error };
  }
}
