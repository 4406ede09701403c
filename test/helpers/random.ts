/** A small seeded PRNG (mulberry32) so random test inputs can be replayed from a printed seed. */

// Module-level binding: global lookups inside hot loops are slow in jest's vm context.
const { imul } = Math;

/** Returns a generator of uniform numbers in [0, 1) for `seed`. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
