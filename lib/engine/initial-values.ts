/**
 * Seeded initial values that every rank computes identically for any slice of a
 * parameter: element i of parameter p is a pure function of (seed, p, i) (a
 * counter-based generator), so each rank draws only its own shard and all
 * replicas agree without communication.
 */
import type { ParameterInit, ParameterSlot } from './layout';

/** A 32-bit avalanche mix (the finaliser of MurmurHash3). */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform number in (0, 1) from (seed, parameter, element, stream). */
function uniform(seed: number, parameter: number, element: number, stream: number): number {
  const low = element >>> 0;
  const high = Math.floor(element / 2 ** 32) >>> 0;
  let h = mix32((seed ^ 0x9e3779b9) >>> 0);
  h = mix32((h ^ Math.imul(parameter + 1, 0x27d4eb2f)) >>> 0);
  h = mix32((h ^ low) >>> 0);
  h = mix32((h ^ Math.imul(high + 1, 0x165667b1) ^ Math.imul(stream + 1, 0x61c88647)) >>> 0);
  return ((h >>> 8) + 0.5) / 2 ** 24;
}

/**
 * The initial values of elements [from, from + length) of `slot`, as float32, for
 * the given seed.
 */
export function initialValues(slot: ParameterSlot, seed: number, from: number, length: number): Float32Array {
  const out = new Float32Array(length);
  const init: ParameterInit = slot.init;
  if (init === 'zeros') return out;
  if (init === 'ones') return out.fill(1);
  if ('constant' in init) return out.fill(init.constant);
  if ('uniform' in init) {
    const { low, high } = init.uniform;
    for (let k = 0; k < length; k++) out[k] = low + (high - low) * uniform(seed, slot.index, from + k, 0);
    return out;
  }
  const { std, mean = 0 } = init.normal;
  for (let k = 0; k < length; k++) {
    // Box-Muller from two independent streams of the same element.
    const u1 = uniform(seed, slot.index, from + k, 0);
    const u2 = uniform(seed, slot.index, from + k, 1);
    out[k] = mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}
