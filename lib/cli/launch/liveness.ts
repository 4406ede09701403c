/**
 * Liveness of a multi-node job's agents, through the store:
 * - every agent but node 0 registers its store connection as a member of `launch/<run>/agents`;
 *   if that connection closes before the agent unregistered (the agent died, its host went
 *   down), node 0's store fails node 0's standing wait on the scope at once, naming the node;
 * - every agent but node 0 adds to `hb/<node>` every heartbeat interval; node 0 notices a counter
 *   that stopped moving for the heartbeat timeout (a partition or a hung host: nothing closes);
 * - an agent whose heartbeats get no reply for the heartbeat timeout has lost the store.
 * Node 0 hosts the store, so it never loses it; it is the one that watches the others.
 */
import { MicsError } from '../../core/errors';
import type { AgentStore } from './rendezvous';

/** What a {@link Liveness} needs. */
export interface LivenessOptions {
  readonly store: AgentStore;
  readonly nodeRank: number;
  readonly nnodes: number;
  /** Silence after which a node, or the store, counts as lost. */
  readonly timeoutMs: number;
  /** Node 0: node `nodeRank` was lost, and why. */
  readonly onNodeLost: (nodeRank: number, message: string) => void;
  /** Other nodes: the store stopped answering (or its connection closed), and why. */
  readonly onStoreLost: (message: string) => void;
}

/** The heartbeat interval for a heartbeat timeout: five beats fit in the timeout. */
export function heartbeatIntervalMs(timeoutMs: number): number {
  return Math.max(50, Math.floor(timeoutMs / 5));
}

/** The standing wait of node 0 on the agents' scope: a key nobody ever sets. */
const NEVER_KEY = 'never';
const WATCH_SLICE_MS = 60000;

/** Resolves with `p`, or rejects after `ms` (the store client's own deadlines are far longer). */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MicsError(`${what}: no reply within ${ms} ms`, 'MICS_TIMEOUT')), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** One agent's part in the job's liveness. Create with {@link Liveness.start}. */
export class Liveness {
  private readonly lost = new Map<number, string>();
  /** Nodes that left the store properly (their heartbeats stop then). */
  private readonly left = new Set<number>();
  private readonly lastChange = new Map<number, { value: number; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private storeLost = false;
  private lastReply = Date.now();
  private registered = false;
  /** Node 0's check is under way (a slow store must not stack checks up). */
  private checking = false;

  private constructor(private readonly o: LivenessOptions) {}

  /** Registers (other nodes) and starts the heartbeats or the watch. */
  static async start(o: LivenessOptions): Promise<Liveness> {
    const l = new Liveness(o);
    if (o.nnodes > 1) {
      if (o.nodeRank !== 0) {
        await withDeadline(o.store.keys.withPrefix('agents').register(o.nodeRank), o.timeoutMs, 'registering with the store');
        l.registered = true;
        // The first beat before the rendezvous: node 0 watches a node from its first beat on.
        await withDeadline(o.store.keys.add(`hb/${o.nodeRank}`, 1), o.timeoutMs, 'the first heartbeat');
        l.lastReply = Date.now();
      } else {
        void l.watchMembership();
      }
      const interval = heartbeatIntervalMs(o.timeoutMs);
      l.timer = setInterval(() => void (o.nodeRank === 0 ? l.checkHeartbeats() : l.beat()), interval);
      l.timer.unref();
    }
    return l;
  }

  /** Records a node found lost elsewhere (the starter saw its ssh session end): nobody waits for it. */
  markLost(nodeRank: number, message: string): void {
    if (!this.lost.has(nodeRank)) this.lost.set(nodeRank, message);
  }

  /** Whether node `nodeRank` was found lost (node 0 only). */
  isLost(nodeRank: number): boolean {
    return this.lost.has(nodeRank);
  }

  /** Ends heartbeats and watching; other nodes unregister, so their leaving is not a loss. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    if (this.registered && !this.storeLost) {
      await withDeadline(this.o.store.keys.withPrefix('agents').unregister(), this.o.timeoutMs, 'unregistering').catch(() => undefined);
    }
  }

  private nodeLost(nodeRank: number, message: string): void {
    if (this.stopped || this.lost.has(nodeRank)) return;
    this.lost.set(nodeRank, message);
    this.o.onNodeLost(nodeRank, message);
  }

  private loseStore(message: string): void {
    if (this.stopped || this.storeLost) return;
    this.storeLost = true;
    clearInterval(this.timer);
    this.o.onStoreLost(message);
  }

  /** Other nodes: one heartbeat, and the check that the store still answers. */
  private async beat(): Promise<void> {
    if (this.stopped || this.storeLost) return;
    const silent = Date.now() - this.lastReply;
    if (silent > this.o.timeoutMs) {
      this.loseStore(`no reply from the store at ${this.o.store.address} for ${(silent / 1000).toFixed(1)} s (heartbeat timeout ${this.o.timeoutMs / 1000} s)`);
      return;
    }
    try {
      await this.o.store.keys.add(`hb/${this.o.nodeRank}`, 1);
      this.lastReply = Date.now();
    } catch (err) {
      // A closed connection is final; a slow reply is judged by the silence above.
      if (err instanceof MicsError && err.code === 'MICS_STORE_CLOSED') {
        this.loseStore(`lost the connection to the store at ${this.o.store.address} (${err.message})`);
      }
    }
  }

  /** Node 0: every other node's counter must move within the timeout once it started. */
  private async checkHeartbeats(): Promise<void> {
    if (this.stopped || this.checking) return;
    this.checking = true;
    try {
      await this.checkOnce();
    } finally {
      this.checking = false;
    }
  }

  private async checkOnce(): Promise<void> {
    const now = Date.now();
    for (let k = 1; k < this.o.nnodes; k++) {
      if (this.lost.has(k) || this.left.has(k)) continue;
      let value: number;
      try {
        value = await this.o.store.keys.add(`hb/${k}`, 0);
      } catch {
        return; // node 0's own client is closing: the job is over
      }
      const last = this.lastChange.get(k);
      if (last === undefined || last.value !== value) {
        this.lastChange.set(k, { value, at: now });
        continue;
      }
      // A node that never beat has not joined yet: the rendezvous timeout covers it.
      if (value > 0 && now - last.at > this.o.timeoutMs) {
        // A node that finished stops beating: it left (rendezvous.ts leave()), it is not lost.
        const gone = await this.o.store.keys.check([`left/${k}`]).catch(() => false);
        if (gone) {
          this.left.add(k);
          continue;
        }
        this.nodeLost(k, `no heartbeat from its launcher for ${((now - last.at) / 1000).toFixed(1)} s (network partition, or the host hung)`);
      }
    }
  }

  /** Node 0: a standing wait on the agents' scope fails at once when a member's connection closes. */
  private async watchMembership(): Promise<void> {
    const view = this.o.store.keys.withPrefix('agents');
    while (!this.stopped) {
      try {
        await view.wait([NEVER_KEY], WATCH_SLICE_MS);
      } catch (err) {
        if (!(err instanceof MicsError)) return;
        if (err.code === 'MICS_TIMEOUT') continue;
        if (err.code === 'MICS_PEER_LOST' && typeof err.peer === 'number') {
          this.nodeLost(err.peer, "its launcher's connection to the store closed before it finished (the launcher died, or its host went down)");
        }
        // The server reports one lost member per scope: heartbeats cover any further one.
        return;
      }
    }
  }
}
