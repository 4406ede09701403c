/**
 * The parameter registry and its flat, sharded layout (pure: no I/O, no addon).
 *
 * Parameters are grouped into units, the gather/release granularity (FSDP's
 * `fully_shard` modules, DeepSpeed's sub-modules). A unit is one flat buffer: its
 * parameters back to back in registry order, then zero padding up to a multiple of
 * S x alignment, so that each of the S ranks of a partition group holds one equal,
 * aligned shard. A rank keeps the shards of every unit back to back in one "shard
 * space", so the boundary work (all-reduce, norm, optimizer) runs over one buffer.
 */
import { describeValue, invalidArgument, valueText } from '../core/errors';

/** How a parameter's initial values are drawn when the engine initialises them. */
export type ParameterInit =
  | 'zeros'
  | 'ones'
  | { normal: { mean?: number; std: number } }
  | { uniform: { low: number; high: number } }
  | { constant: number };

/** One parameter of the model. */
export interface ParameterSpec {
  /** Unique name ("layer1.weight"). */
  name: string;
  /** Dimensions; the engine stores the parameter flat, row-major. [] is a scalar. */
  shape: readonly number[];
  /**
   * The unit this parameter belongs to, by unit name. Parameters naming the same unit
   * must be consecutive. Default: units are made by {@link UnitOptions}.
   */
  unit?: string;
  /** Initial values when the engine initialises (default: normal(0, 0.02) for >= 2-D, zeros for 1-D). */
  init?: ParameterInit;
}

/** How parameters without an explicit `unit` are grouped. */
export interface UnitOptions {
  /**
   * Consecutive parameters are bucketed into units of at most this many elements
   * (a parameter larger than that is a unit of its own). Default 2^24 (64 MiB of f32).
   */
  maxElements?: number;
}

/** One parameter's place in its unit's flat buffer. */
export interface ParameterSlot {
  readonly name: string;
  readonly shape: readonly number[];
  /** Number of elements (product of the shape). */
  readonly numel: number;
  /** First element in the unit's flat buffer. */
  readonly offset: number;
  /** Index in the registry. */
  readonly index: number;
  readonly init: ParameterInit;
}

/** A unit: the parameters gathered and released together. */
export interface UnitLayout {
  readonly index: number;
  readonly name: string;
  readonly parameters: readonly ParameterSlot[];
  /** Elements of real parameters. */
  readonly numel: number;
  /** numel rounded up to a multiple of S x alignment: the gathered buffer's length. */
  readonly paddedNumel: number;
  /** paddedNumel / S: the elements each rank holds. */
  readonly shardNumel: number;
  /** Where this unit's shard starts in a rank's shard space. */
  readonly shardOffset: number;
}

/** A run of a rank's shard space that belongs to one parameter (or is padding). */
export interface ShardSegment {
  /** Offset in the shard space. */
  readonly offset: number;
  readonly length: number;
  /** The parameter, or undefined for padding. */
  readonly parameter?: ParameterSlot;
  /** Offset of the segment's first element inside the parameter (flat). */
  readonly parameterOffset: number;
}

/** The whole layout for one partition size. */
export interface ModelLayout {
  readonly partitionSize: number;
  readonly alignment: number;
  readonly units: readonly UnitLayout[];
  readonly parameters: readonly ParameterSlot[];
  /** Elements of real parameters in the model. */
  readonly numel: number;
  /** Sum of the units' padded lengths (the model as the layout stores it). */
  readonly paddedNumel: number;
  /** Elements each rank holds: the sum of the units' shards. */
  readonly shardNumel: number;
  /** Unit of a parameter by name. */
  unitOf(name: string): UnitLayout;
  /** The segments of the shard space of partition rank `partitionRank`, in order. */
  segments(partitionRank: number): ShardSegment[];
}

const DEFAULT_MAX_UNIT_ELEMENTS = 2 ** 24;

function shapeNumel(name: string, shape: unknown): number {
  if (!Array.isArray(shape)) throw invalidArgument(`parameter '${name}': shape must be an array of dimensions, got ${valueText(shape)}`);
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw invalidArgument(`parameter '${name}': dimension ${valueText(d)} in shape ${describeValue(shape)} is not valid: use integers >= 0`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw invalidArgument(`parameter '${name}': shape ${describeValue(shape)} has too many elements`);
  return n;
}

function defaultInit(shape: readonly number[]): ParameterInit {
  return shape.length >= 2 ? { normal: { std: 0.02 } } : 'zeros';
}

function checkInit(name: string, init: ParameterInit): void {
  const fail = (): never => {
    throw invalidArgument(
      `parameter '${name}': init ${describeValue(init)} is not valid: use 'zeros', 'ones', {normal: {std, mean?}}, {uniform: {low, high}} or {constant}`,
    );
  };
  if (init === 'zeros' || init === 'ones') return;
  if (typeof init !== 'object' || init === null) fail();
  if ('normal' in init) {
    const { std, mean = 0 } = init.normal ?? ({} as { std: number; mean?: number });
    if (!(std >= 0) || !Number.isFinite(std) || !Number.isFinite(mean)) fail();
  } else if ('uniform' in init) {
    const { low, high } = init.uniform ?? ({} as { low: number; high: number });
    if (!Number.isFinite(low) || !Number.isFinite(high) || !(low <= high)) fail();
  } else if ('constant' in init) {
    if (!Number.isFinite(init.constant)) fail();
  } else {
    fail();
  }
}

/**
 * Lays out `parameters` for partition size `partitionSize`.
 * @throws MicsError MICS_INVALID_ARGUMENT for duplicate names, bad shapes, bad unit
 *   options or non-consecutive explicit units.
 */
export function planLayout(
  parameters: readonly ParameterSpec[],
  partitionSize: number,
  options: UnitOptions & { alignment?: number } = {},
): ModelLayout {
  if (!Array.isArray(parameters) || parameters.length === 0) {
    throw invalidArgument('parameters must be a non-empty array of {name, shape}');
  }
  if (!Number.isSafeInteger(partitionSize) || partitionSize < 1) {
    throw invalidArgument(`partition size ${valueText(partitionSize)} is not valid: use an integer >= 1`);
  }
  const alignment = options.alignment ?? 16;
  if (!Number.isSafeInteger(alignment) || alignment < 1) {
    throw invalidArgument(`alignment ${valueText(alignment)} is not valid: use an integer >= 1 (elements)`);
  }
  const maxElements = options.maxElements ?? DEFAULT_MAX_UNIT_ELEMENTS;
  if (!Number.isSafeInteger(maxElements) || maxElements < 1) {
    throw invalidArgument(`units.maxElements ${valueText(maxElements)} is not valid: use an integer >= 1`);
  }

  // Registry: names unique, shapes valid.
  const seen = new Set<string>();
  // Array.from: a sparse array's holes are reported as missing parameters, not skipped.
  const specs = Array.from(parameters, (p, index) => {
    if (typeof p?.name !== 'string' || p.name === '') {
      throw invalidArgument(`parameter ${index}: name must be a non-empty string, got ${describeValue(p?.name)}`);
    }
    if (seen.has(p.name)) throw invalidArgument(`parameter '${p.name}' is listed twice: names must be unique`);
    seen.add(p.name);
    const numel = shapeNumel(p.name, p.shape);
    const init = p.init ?? defaultInit(p.shape);
    checkInit(p.name, init);
    return { spec: p, index, numel, init };
  });

  // Units: explicit names first (consecutive), the rest bucketed in order.
  const groups: { name: string; members: typeof specs }[] = [];
  const explicit = new Set<string>();
  let bucket: typeof specs = [];
  let bucketNumel = 0;
  const flush = (): void => {
    if (bucket.length > 0) groups.push({ name: `unit${groups.length}`, members: bucket });
    bucket = [];
    bucketNumel = 0;
  };
  for (const s of specs) {
    const unit = s.spec.unit;
    if (unit !== undefined) {
      if (typeof unit !== 'string' || unit === '') {
        throw invalidArgument(`parameter '${s.spec.name}': unit must be a non-empty string, got ${describeValue(unit)}`);
      }
      flush();
      const last = groups[groups.length - 1];
      if (last && last.name === unit && explicit.has(unit)) {
        last.members.push(s);
      } else {
        if (explicit.has(unit)) {
          throw invalidArgument(`parameter '${s.spec.name}': the parameters of unit '${unit}' must be consecutive in the registry`);
        }
        explicit.add(unit);
        groups.push({ name: unit, members: [s] });
      }
      continue;
    }
    if (bucket.length > 0 && bucketNumel + s.numel > maxElements) flush();
    bucket.push(s);
    bucketNumel += s.numel;
  }
  flush();
  // Automatic names must not collide with explicit ones.
  const names = new Set<string>();
  for (const g of groups) {
    if (names.has(g.name)) throw invalidArgument(`unit name '${g.name}' is used twice: name units uniquely`);
    names.add(g.name);
  }

  const quantum = partitionSize * alignment;
  const allSlots: ParameterSlot[] = [];
  const units: UnitLayout[] = [];
  let shardOffset = 0;
  groups.forEach((g, index) => {
    let offset = 0;
    const slots = g.members.map((m) => {
      const slot: ParameterSlot = Object.freeze({
        name: m.spec.name,
        shape: Object.freeze([...m.spec.shape]),
        numel: m.numel,
        offset,
        index: m.index,
        init: m.init,
      });
      offset += m.numel;
      allSlots.push(slot);
      return slot;
    });
    const numel = offset;
    const paddedNumel = Math.max(quantum, Math.ceil(numel / quantum) * quantum);
    const shardNumel = paddedNumel / partitionSize;
    units.push(Object.freeze({ index, name: g.name, parameters: Object.freeze(slots), numel, paddedNumel, shardNumel, shardOffset }));
    shardOffset += shardNumel;
  });
  allSlots.sort((a, b) => a.index - b.index);
  const byName = new Map<string, UnitLayout>();
  for (const u of units) for (const p of u.parameters) byName.set(p.name, u);

  return Object.freeze({
    partitionSize,
    alignment,
    units: Object.freeze(units),
    parameters: Object.freeze(allSlots),
    numel: units.reduce((s, u) => s + u.numel, 0),
    paddedNumel: units.reduce((s, u) => s + u.paddedNumel, 0),
    shardNumel: shardOffset,
    unitOf(name: string): UnitLayout {
      const unit = byName.get(name);
      if (!unit) throw invalidArgument(`no parameter named '${name}'`);
      return unit;
    },
    segments(partitionRank: number): ShardSegment[] {
      if (!Number.isSafeInteger(partitionRank) || partitionRank < 0 || partitionRank >= partitionSize) {
        throw invalidArgument(`partition rank ${valueText(partitionRank)} is not valid: use an integer in [0, ${partitionSize - 1}]`);
      }
      return units.flatMap((u) => unitSegments(u, partitionRank));
    },
  });
}

/** The segments of unit `u`'s shard on `partitionRank`, with offsets in the shard space. */
export function unitSegments(u: UnitLayout, partitionRank: number): ShardSegment[] {
  const begin = partitionRank * u.shardNumel; // in the unit's flat buffer
  const end = begin + u.shardNumel;
  const out: ShardSegment[] = [];
  let cursor = begin;
  for (const p of u.parameters) {
    const from = Math.max(begin, p.offset);
    const to = Math.min(end, p.offset + p.numel);
    if (from >= to) continue;
    if (from > cursor) out.push({ offset: u.shardOffset + cursor - begin, length: from - cursor, parameterOffset: 0 });
    out.push({ offset: u.shardOffset + from - begin, length: to - from, parameter: p, parameterOffset: from - p.offset });
    cursor = to;
  }
  if (cursor < end) out.push({ offset: u.shardOffset + cursor - begin, length: end - cursor, parameterOffset: 0 });
  return out;
}
