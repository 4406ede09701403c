/**
 * The typed communicator: collectives over host tensors, split and subgroups.
 *
 * Ops on one communicator run in the order they were issued on the communicator's
 * own progress thread; each returns a Promise. Do not touch a buffer until the
 * Promise of the op using it settles (the addon keeps it referenced until then).
 */
import { loadAddon, type NativeCommunicator, type NativeOp } from '../core/native';
import type { StoreClient } from '../store';
import { REDUCE_OPS, type ReduceOp } from '../core/dtypes';
import { MicsError, booleanOption, describeValue, invalidArgument, optionsObject, rejecting, valueText, type MicsErrorCode } from '../core/errors';
import { noteFailure } from './failure-record';
import { keepAttached } from '../core/untransferable';
import { isTensor, resolveBuffer, type ResolvedBuffer, type Tensor } from './tensor';

/** Options every collective accepts. */
export interface CollectiveOptions {
  /** Per-op timeout in milliseconds (default: the communicator's, 5 minutes unless set at init). */
  timeoutMs?: number;
}

/** Options of reducing collectives. */
export interface ReduceOptions extends CollectiveOptions {
  /** Reduction (default 'sum'). */
  op?: ReduceOp;
}

/** Options of Communicator.reduceScatter. */
export interface AccumulateOptions extends ReduceOptions {
  /**
   * Add the result into `output` (output += the reduction) in the same pass instead
   * of overwriting it: gradient accumulation without a temporary buffer, with the
   * bits of a reduce-scatter into a temporary followed by output + temporary. CPU
   * backend only (NCCL rejects it); `output` must not overlap `input`.
   */
  accumulate?: boolean;
}

/** Options of broadcast. */
export interface BroadcastOptions extends CollectiveOptions {
  /** The rank whose buffer is sent (default 0). */
  root?: number;
}

/** Where a communicator's members live: used to create sub-communicators. */
export interface GroupContext {
  /** The rendezvous store, scoped to this group's key prefix (absent in a one-rank world). */
  store: StoreClient | undefined;
  /** World rank of each member, in group-rank order. */
  worldRanks: number[];
  /** Node rank of each member, in group-rank order. */
  nodes: number[];
  /** Address this process listens on for TCP. */
  host: string;
  /** Default per-op timeout. */
  timeoutMs: number;
  /** CUDA device of this rank (nccl). */
  device?: number;
}

/** The options of a call that passed none (shared: options are only read). */
const NO_OPTIONS: Readonly<AccumulateOptions> = Object.freeze({});

/** Which backend runs the collectives. */
export type Backend = 'cpu' | 'nccl';

/** A group of ranks that run collectives together. */
export class Communicator {
  /** This process's rank in the group. */
  readonly rank: number;
  /** Number of ranks in the group. */
  readonly size: number;
  /** The group's name, used in every error it raises. */
  readonly name: string;
  readonly backend: Backend;
  private splitCount = 0;
  private agreementCount = 0;
  private readonly subgroupCounts = new Map<string, number>();
  private readonly children = new Set<Communicator>();
  private destroyed = false;
  private onDestroy: (() => void) | undefined;
  /** The native op's Promise when it completed on the calling thread (see run()). */
  private readonly settled: Promise<void>;
  /** The context's timeout when it is valid (run() then skips checking it per op). */
  private readonly defaultTimeoutMs: number | undefined;
  private readonly rethrowAnnotated = (err: unknown): never => {
    throw this.annotate(err);
  };

  /** @internal Use init(), split() or subgroup(). */
  constructor(
    private readonly native: NativeCommunicator,
    private readonly context: GroupContext,
  ) {
    this.backend = native.backend;
    this.rank = native.rank;
    this.size = native.size;
    this.name = native.name;
    this.settled = native.settled;
    this.defaultTimeoutMs = wholeTimeoutMs(context.timeoutMs);
  }

  /** 'self', 'shm' (one node) or 'tcp' (spans nodes). */
  get transport(): string {
    return this.native.transport;
  }

  /**
   * Collectives so far that read the peers' inputs in place because every rank's
   * input came from `allocHost()` (shared-memory transport only).
   */
  get directOps(): number {
    return this.native.directOps;
  }

  /** World rank of each member, in group-rank order. */
  get worldRanks(): readonly number[] {
    return this.context.worldRanks;
  }

  /** Node rank of each member, in group-rank order. */
  get nodes(): readonly number[] {
    return this.context.nodes;
  }

  /** The CUDA device of this rank (nccl backend); undefined on the cpu backend. */
  get device(): number | undefined {
    return this.backend === 'nccl' ? (this.context.device ?? 0) : undefined;
  }

  /** Default per-op timeout of this communicator in milliseconds. */
  get timeoutMs(): number {
    return this.context.timeoutMs;
  }

  /**
   * Gathers every rank's `input` into `output` (size x input elements, rank r's
   * piece at offset r x input.length). In place: pass `output`'s own slot as input.
   */
  allGather(input: Tensor, output: Tensor, options: CollectiveOptions = NO_OPTIONS): Promise<void> {
    // try/catch rather than rejecting(): a closure per call costs small ops.
    try {
      const checked = optionsObject('allGather', options, NO_OPTIONS);
      const send = this.buffer(input, 'allGather input');
      const recv = this.buffer(output, 'allGather output');
      this.sameDtype('allGather', send.dtype, recv.dtype);
      return this.run('allGather', send.native, recv.native, send.dtype, 'sum', 0, checked);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Reduces `input` (size x output elements) across ranks and leaves block `rank`
   * of the result in `output` (or adds it there: `accumulate`). In place: pass
   * input's own slot as output.
   */
  reduceScatter(input: Tensor, output: Tensor, options: AccumulateOptions = NO_OPTIONS): Promise<void> {
    try {
      const checked = optionsObject('reduceScatter', options, NO_OPTIONS);
      const send = this.buffer(input, 'reduceScatter input');
      const recv = this.buffer(output, 'reduceScatter output');
      this.sameDtype('reduceScatter', send.dtype, recv.dtype);
      const accumulate = booleanOption('reduceScatter: accumulate', checked.accumulate, false);
      return this.run('reduceScatter', send.native, recv.native, send.dtype, this.reduceOp(checked), 0, checked, accumulate);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Reduces across ranks: in place as `allReduce(buffer, options)`, or into `output`. */
  allReduce(buffer: Tensor, options?: ReduceOptions): Promise<void>;
  allReduce(input: Tensor, output: Tensor, options?: ReduceOptions): Promise<void>;
  allReduce(input: Tensor, second?: Tensor | ReduceOptions, third?: ReduceOptions): Promise<void> {
    try {
      const inPlace = second === undefined || !isTensor(second);
      const output = inPlace ? input : second;
      const options = optionsObject('allReduce', (inPlace ? second : third) as ReduceOptions | null | undefined, NO_OPTIONS);
      const send = this.buffer(input, 'allReduce input');
      const recv = output === input ? send : this.buffer(output, 'allReduce output');
      this.sameDtype('allReduce', send.dtype, recv.dtype);
      return this.run('allReduce', send.native, recv.native, send.dtype, this.reduceOp(options), 0, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Copies root's buffer to every rank: in place as `broadcast(buffer, {root})`, or into `output`. */
  broadcast(buffer: Tensor, options?: BroadcastOptions): Promise<void>;
  broadcast(input: Tensor, output: Tensor, options?: BroadcastOptions): Promise<void>;
  broadcast(input: Tensor, second?: Tensor | BroadcastOptions, third?: BroadcastOptions): Promise<void> {
    return rejecting(() => {
      const [output, given] = isTensor(second) ? [second, third] : [input, second];
      const options = optionsObject('broadcast', given, NO_OPTIONS);
      const send = this.buffer(input, 'broadcast input');
      const recv = output === input ? send : this.buffer(output, 'broadcast output');
      this.sameDtype('broadcast', send.dtype, recv.dtype);
      const root = options.root ?? 0;
      if (!Number.isInteger(root) || root < 0 || root >= this.size) {
        throw invalidArgument(`broadcast: root ${valueText(root)} is not valid: use an integer in [0, ${this.size - 1}]`);
      }
      return this.run('broadcast', send.native, recv.native, send.dtype, 'sum', root, options);
    });
  }

  /** Resolves once every rank of the group has called barrier(). */
  barrier(options: CollectiveOptions = NO_OPTIONS): Promise<void> {
    return rejecting(() => this.run('barrier', null, null, 'u8', 'sum', 0, optionsObject('barrier', options, NO_OPTIONS)));
  }

  /**
   * Splits the group (collective over all its ranks, ncclCommSplit semantics):
   * ranks passing the same `color` form a new communicator, ordered by `key` then
   * by rank; `color` -1 (or null) takes no part and gets null.
   */
  async split(color: number | null, key: number = this.rank, options: { name?: string } = {}): Promise<Communicator | null> {
    this.ensureUsable('split');
    const name = childName('split', optionsObject('split', options, {}));
    const myColor = color ?? -1;
    if (!Number.isInteger(myColor) || myColor < -1 || myColor > 0x7fffffff) {
      throw invalidArgument(`split: color ${valueText(color)} is not valid: use an integer >= 0, or -1/null to opt out`);
    }
    if (!Number.isInteger(key) || Math.abs(key) > 0x7fffffff) {
      throw invalidArgument(`split: key ${valueText(key)} is not valid: use a 32-bit integer`);
    }
    const index = this.splitCount++;
    // Colors and keys travel through the store, not a collective on this group:
    // that works the same for host (CPU) and device (NCCL) communicators.
    const entries = await this.exchange(`split${index}`, `${myColor},${key}`, 'split');
    const members: { rank: number; key: number }[] = [];
    entries.forEach((entry, r) => {
      const [c, k] = entry.split(',').map(Number);
      if (c === myColor && myColor !== -1) members.push({ rank: r, key: k });
    });
    members.sort((a, b) => a.key - b.key || a.rank - b.rank);
    const ranks = members.map((m) => m.rank);
    const keySuffix = `split${index}/color${myColor}`;
    const childGroupName = name ?? `${this.name}/split${index}:${myColor}`;
    // NCCL 2.18+: ncclCommSplit, collective over every rank of this group (color -1 too),
    // instead of a fresh unique id per new group. The order above is NCCL's (key, then rank).
    if (this.native.canSplit) {
      if (myColor === -1) {
        await this.settle(() => this.native.splitInto(null, -1, key, this.context.timeoutMs));
        return null;
      }
      return this.createChild(ranks, keySuffix, childGroupName, { parent: this.native, color: myColor, key });
    }
    if (myColor === -1) return null;
    return this.createChild(ranks, keySuffix, childGroupName);
  }

  /**
   * A communicator of the given members (group ranks of this communicator), called
   * by the members only. Members must create the same subgroups in the same order.
   */
  async subgroup(ranks: readonly number[], options: { name?: string } = {}): Promise<Communicator> {
    this.ensureUsable('subgroup');
    const name = childName('subgroup', optionsObject('subgroup', options, {}));
    if (!Array.isArray(ranks)) throw invalidArgument(`subgroup: ranks ${describeValue(ranks)} is not valid: use an array of group ranks`);
    const seen = new Set<number>();
    for (const r of ranks) {
      if (!Number.isInteger(r) || r < 0 || r >= this.size) {
        throw invalidArgument(`subgroup: rank ${valueText(r)} is not valid: use integers in [0, ${this.size - 1}]`);
      }
      if (seen.has(r)) throw invalidArgument(`subgroup: rank ${r} is listed twice in [${ranks.join(', ')}]`);
      seen.add(r);
    }
    if (!seen.has(this.rank)) {
      throw invalidArgument(`subgroup: this rank (${this.rank}) is not in [${ranks.join(', ')}]: only members call subgroup()`);
    }
    const id = ranks.join('.');
    const count = this.subgroupCounts.get(id) ?? 0;
    this.subgroupCounts.set(id, count + 1);
    return this.createChild([...ranks], `group/${id}/${count}`, name ?? `${this.name}/[${ranks.join(',')}]`);
  }

  /** Fails every op in flight and every later op on every member (with the reason). */
  abort(reason = 'abort() called'): void {
    this.native.abort(reason);
  }

  /** Releases threads, sockets and shared memory; sub-communicators first. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.children) child.destroy();
    this.children.clear();
    this.native.destroy();
    this.onDestroy?.();
  }

  /** @internal Runs when destroy() is called (the world closes its store). */
  setOnDestroy(callback: () => void): void {
    this.onDestroy = callback;
  }

  private async createChild(groupRanks: number[], keySuffix: string, name: string, splitFrom?: SplitSource): Promise<Communicator> {
    const child = await connectCommunicator({
      splitFrom,
      backend: this.backend,
      device: this.context.device,
      store: this.context.store?.withPrefix(keySuffix),
      rank: groupRanks.indexOf(this.rank),
      worldRanks: groupRanks.map((r) => this.context.worldRanks[r]),
      nodes: groupRanks.map((r) => this.context.nodes[r]),
      host: this.context.host,
      name,
      timeoutMs: this.context.timeoutMs,
    });
    this.children.add(child);
    child.setOnDestroy(() => this.children.delete(child));
    return child;
  }

  /**
   * @internal Every member's `value`, in rank order, under a key of its own (through
   * the store, so host and device communicators alike): for checks that every rank
   * asked for the same thing before a collective step depends on it. Collective.
   */
  async valuesOfEveryRank(what: string, value: string): Promise<string[]> {
    this.ensureUsable(what);
    return this.exchange(`agree${this.agreementCount++}`, value, what);
  }

  /** Every member's `value` for `key`, in rank order (through the store). */
  private async exchange(key: string, value: string, what: string): Promise<string[]> {
    if (this.size === 1) return [value];
    const store = this.context.store;
    if (!store) {
      throw new MicsError(`group '${this.name}' of ${this.size} ranks has no rendezvous store`, 'MICS_INVALID_ARGUMENT');
    }
    const keys = Array.from({ length: this.size }, (_, r) => `${key}/${r}`);
    try {
      await store.set(keys[this.rank], value);
      const values = await store.multiGet(keys, this.context.timeoutMs);
      return values.map((v) => v.toString('utf8'));
    } catch (err) {
      throw await this.exchangeError(err, keys, what);
    }
  }

  /**
   * A failed exchange as the caller's error: the store's names only keys, so say which
   * call on which group it was and, after a timeout, which ranks never arrived.
   */
  private async exchangeError(err: unknown, keys: string[], what: string): Promise<unknown> {
    if (!(err instanceof MicsError) || err.op !== undefined) return err;
    let missing: number[] = [];
    if (err.code === 'MICS_TIMEOUT') {
      const store = this.context.store!;
      const present = await Promise.all(keys.map((k) => store.check([k]).catch(() => true)));
      missing = present.flatMap((here, r) => (here ? [] : [r]));
    }
    const absent = missing.length > 0 ? `: group rank(s) ${missing.join(', ')} never called it` : '';
    return new MicsError(`${what} on group '${this.name}' (rank ${this.rank})${absent}: ${err.message}`, err.code, {
      rank: this.rank,
      group: this.name,
      op: what,
      peer: missing.length === 1 ? missing[0] : undefined,
      cause: err,
    });
  }

  /** Resolves a buffer and checks it lives where this backend works (host or device). */
  private buffer(tensor: Tensor, role: string): ResolvedBuffer {
    const resolved = resolveBuffer(tensor, role);
    const wantsDevice = this.backend === 'nccl';
    if (resolved.device !== wantsDevice) {
      throw invalidArgument(
        wantsDevice
          ? `${role}: the nccl backend works on DeviceTensors, got host memory (upload it first)`
          : `${role}: the cpu backend works on host TypedArrays, got a DeviceTensor`,
      );
    }
    return resolved;
  }

  private reduceOp(options: ReduceOptions): ReduceOp {
    const op = options.op ?? 'sum';
    if (op !== 'sum' && !REDUCE_OPS.includes(op)) {
      throw invalidArgument(`reduction op '${valueText(op)}' is not valid: use one of ${REDUCE_OPS.join(', ')}`);
    }
    return op;
  }

  private sameDtype(what: string, a: string, b: string): void {
    if (a !== b) throw invalidArgument(`${what}: input is ${a} but output is ${b}: both must have the same dtype`);
  }

  private run(
    kind: 'allGather' | 'reduceScatter' | 'allReduce' | 'broadcast' | 'barrier',
    send: object | null,
    recv: object | null,
    dtype: string,
    op: ReduceOp,
    root: number,
    options: CollectiveOptions,
    accumulate = false,
  ): Promise<void> {
    this.ensureUsable(kind);
    const timeoutMs = options.timeoutMs === undefined && this.defaultTimeoutMs !== undefined ? this.defaultTimeoutMs : this.timeout(kind, options);
    let promise: Promise<void>;
    try {
      // settle() inlined: a closure per call costs small ops.
      promise = this.native.collective(kind, send, recv, dtype, op, root, timeoutMs, accumulate);
    } catch (err) {
      return Promise.reject(this.annotate(err));
    }
    if (promise !== this.settled) {
      // The op runs on: its buffers must stay attached until it ends (core/untransferable).
      keepAttached(send);
      keepAttached(recv);
    }
    return this.annotated(promise);
  }

  /**
   * Native errors name ranks of this group; in a sub-group also say which world
   * rank that is (`worldPeer`), since that is what launchers and logs show.
   */
  private annotate(thrown: unknown): MicsError {
    const err = asMicsError(thrown);
    if (err.peer !== undefined && this.name !== 'world' && err.worldPeer === undefined) {
      const world = this.context.worldRanks[err.peer];
      if (world !== undefined) {
        err.worldPeer = world;
        err.message = `${err.message} [group '${this.name}' rank ${err.peer} is world rank ${world}]`;
      }
    }
    // For the launcher's root cause, even if the caller catches it; bad arguments are
    // the caller's own and leave the communicator usable.
    if (err.code !== 'MICS_INVALID_ARGUMENT') noteFailure(err);
    return err;
  }

  /** Starts a native op; whatever it throws or rejects with becomes an annotated MicsError. */
  private settle(start: () => Promise<void>): Promise<void> {
    let promise: Promise<void>;
    try {
      promise = start();
    } catch (err) {
      return Promise.reject(this.annotate(err));
    }
    return this.annotated(promise);
  }

  /** `promise`, rejecting with annotated errors. */
  private annotated(promise: Promise<void>): Promise<void> {
    // An op that completed on the calling thread returns the one settled Promise:
    // nothing to annotate, and no second Promise per small op.
    return promise === this.settled ? promise : promise.catch(this.rethrowAnnotated);
  }

  private ensureUsable(what: string): void {
    if (this.destroyed) {
      throw new MicsError(`${what}: communicator '${this.name}' was destroyed`, 'MICS_ABORTED', {
        rank: this.rank,
        group: this.name,
        op: what,
      });
    }
  }

  /**
   * Several all-gathers issued as one grouped call (one NCCL group; in issue
   * order on the CPU backend). Each pair is [input, output] as in allGather.
   */
  allGatherGroup(pairs: [input: Tensor, output: Tensor][], options: CollectiveOptions = {}): Promise<void> {
    return rejecting(() => {
      if (!Array.isArray(pairs)) throw invalidArgument(`allGatherGroup: ${describeValue(pairs)} is not valid: use an array of [input, output] pairs`);
      const ops: NativeOp[] = pairs.map((pair, i) => {
        if (!Array.isArray(pair) || pair.length !== 2) {
          throw invalidArgument(`allGatherGroup: pair ${i} is ${describeValue(pair)}: use [input, output]`);
        }
        const [input, output] = pair as [Tensor, Tensor];
        const send = this.buffer(input, `allGatherGroup input ${i}`);
        const recv = this.buffer(output, `allGatherGroup output ${i}`);
        this.sameDtype('allGatherGroup', send.dtype, recv.dtype);
        return ['allGather', send.native, recv.native, send.dtype, 'sum', 0];
      });
      this.ensureUsable('allGatherGroup');
      const timeoutMs = this.timeout('allGatherGroup', optionsObject('allGatherGroup', options, NO_OPTIONS));
      return this.settle(() => {
        const promise = this.native.group(ops, timeoutMs);
        for (const [, send, recv] of ops) {
          keepAttached(send);
          keepAttached(recv);
        }
        return promise;
      });
    });
  }

  private timeout(kind: string, options: CollectiveOptions): number {
    const timeoutMs = options.timeoutMs ?? this.context.timeoutMs;
    const whole = wholeTimeoutMs(timeoutMs);
    if (whole === undefined) {
      throw invalidArgument(`${kind}: timeoutMs ${valueText(timeoutMs)} is not valid: use a positive number of milliseconds`);
    }
    return whole;
  }
}

/**
 * @internal `ranks` (every index of `values` when left out) grouped by the value each
 * holds, in the order the values first appear: for the messages of agreement checks
 * over valuesOfEveryRank and the like.
 */
export function ranksByValue<V>(values: readonly V[], ranks: Iterable<number> = values.keys()): Map<V, number[]> {
  const byValue = new Map<V, number[]>();
  for (const r of ranks) {
    const group = byValue.get(values[r]);
    if (group) group.push(r);
    else byValue.set(values[r], [r]);
  }
  return byValue;
}

/** The `name` option of split() and subgroup(): a non-empty string, or undefined for the default. */
function childName(what: string, options: { name?: unknown }): string | undefined {
  const name = options.name;
  if (name !== undefined && (typeof name !== 'string' || name === '')) {
    throw invalidArgument(`${what}: name ${describeValue(name)} is not valid: use a non-empty string`);
  }
  return name;
}

/**
 * A valid timeout in whole milliseconds (rounded up; Infinity stays Infinity: no
 * deadline, as the native side reads it), or undefined for an invalid one.
 */
function wholeTimeoutMs(timeoutMs: number): number | undefined {
  return typeof timeoutMs === 'number' && timeoutMs > 0 ? Math.ceil(timeoutMs) : undefined;
}

/** A native error as a MicsError, keeping its code and the rank, group, op and peer it names. */
function asMicsError(err: unknown): MicsError {
  if (err instanceof MicsError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as Partial<Record<'code' | 'group' | 'op', unknown>> &
    Partial<Record<'rank' | 'peer', unknown>>;
  const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const int = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const code = text(e.code);
  return new MicsError(err instanceof Error ? err.message : String(err), (code?.startsWith('MICS_') ? code : 'MICS_INTERNAL') as MicsErrorCode, {
    rank: int(e.rank),
    group: text(e.group),
    op: text(e.op),
    peer: int(e.peer),
    cause: err instanceof MicsError ? undefined : err,
  });
}

/** A native communicator to split (ncclCommSplit) instead of exchanging addresses. */
interface SplitSource {
  parent: NativeCommunicator;
  color: number;
  key: number;
}

/** What connectCommunicator needs: the members and the store prefix they share. */
export interface ConnectOptions {
  /** @internal Made by ncclCommSplit of this parent (Communicator.split on nccl). */
  splitFrom?: SplitSource;
  /** Which backend (default 'cpu'). */
  backend?: Backend;
  /** CUDA device index for 'nccl'. */
  device?: number;
  store: StoreClient | undefined;
  rank: number;
  worldRanks: number[];
  nodes: number[];
  host: string;
  name: string;
  timeoutMs: number;
}

/**
 * Creates the native communicator, exchanges addresses through the store (one
 * key per member under the group's prefix; for NCCL rank 0's ncclUniqueId) and
 * connects: collective over members.
 */
export async function connectCommunicator(options: ConnectOptions): Promise<Communicator> {
  const { addon } = loadAddon();
  const size = options.worldRanks.length;
  const native = new addon.Communicator({
    backend: options.backend ?? 'cpu',
    device: options.device ?? 0,
    rank: options.rank,
    size,
    node: options.nodes[options.rank],
    host: options.host,
    name: options.name,
  });
  try {
    if (options.splitFrom) {
      const { parent, color, key } = options.splitFrom;
      await parent.splitInto(native, color, key, options.timeoutMs);
    } else if (size > 1) {
      if (!options.store) {
        throw new MicsError(`group '${options.name}' of ${size} ranks needs a rendezvous store`, 'MICS_INVALID_ARGUMENT');
      }
      await options.store.set(`addr/${options.rank}`, native.address);
      const keys = Array.from({ length: size }, (_, r) => `addr/${r}`);
      const addresses = (await options.store.multiGet(keys, options.timeoutMs)).map((b) => b.toString('utf8'));
      await native.connect(addresses, options.timeoutMs);
    } else {
      await native.connect([native.address], options.timeoutMs);
    }
  } catch (err) {
    native.destroy();
    throw err;
  }
  return new Communicator(native, {
    device: options.device,
    store: options.store,
    worldRanks: options.worldRanks,
    nodes: options.nodes,
    host: options.host,
    timeoutMs: options.timeoutMs,
  });
}
