/**
 * The agents' rendezvous over the store: node 0 hosts it, the others join; every attempt
 * ("round") each agent announces itself, waits for all nodes, and learns the job layout. The
 * agents' keys live under `launch/<run id>/`, apart from the workers' keys.
 *
 * Keys (relative to `launch/<run id>`):
 * - `r<n>/claim/<node>`: counter; a second agent with the same node rank sees 2 and stops.
 * - `r<n>/node/<node>`: the agent's {@link NodeRecord} (JSON).
 * - `r<n>/end`: how attempt n ended ({@link EndRecord} JSON); the first writer wins (compareSet),
 *   except that a failure that outranks the stored one replaces it (see {@link publishEnd}).
 * - `r<n>/succeeded`: counter of nodes whose ranks all exited 0.
 * - `left/<node>`: set when that agent is done with the store (node 0 closes it after all).
 * - `hb/<node>` and the scope `agents/`: liveness (see liveness.ts).
 * And `launch/job` (outside the run's prefix): run id and node count, so that an agent of
 * another job that reaches this store gets a clear message instead of a timeout.
 */
import { MicsError } from '../../core/errors';
import { StoreClient, StoreServer } from '../../store';
import { LaunchError } from './errors';
import { planJob, type JobLayout, type NodeRecord } from './layout';
import { isVictim, lostRank } from './root-cause';
import { endOutranks, type EndRecord } from './summary';

/** The agent's handle on the store. */
export interface AgentStore {
  /** Keys under `launch/<run id>`. */
  readonly keys: StoreClient;
  /** The root client (closing it closes `keys` too). */
  readonly root: StoreClient;
  /** Set on node 0, which hosts the store. */
  readonly server: StoreServer | undefined;
  /** The store's port (the real one when a free port was asked for). */
  readonly port: number;
  /** host:port, for messages. */
  readonly address: string;
}

/** What an agent needs to open or join the store. */
export interface StoreOptions {
  readonly nodeRank: number;
  readonly nnodes: number;
  readonly runId: string;
  readonly masterAddr: string;
  readonly masterPort: number;
  /** Listen address (node 0). */
  readonly storeHost: string;
  readonly token: string;
  readonly timeoutMs: number;
}

interface JobKey {
  runId: string;
  nnodes: number;
}

/** An unspecified listen address is not one to connect to: use the master address instead. */
function connectHost(o: StoreOptions): string {
  return o.storeHost === '0.0.0.0' || o.storeHost === '::' ? o.masterAddr : o.storeHost;
}

/**
 * Node 0 starts the store on storeHost:masterPort and connects to it; other nodes connect to
 * masterAddr:masterPort, retrying until `timeoutMs`. Every failure becomes a {@link LaunchError}
 * that says what to check.
 */
export async function openStore(o: StoreOptions): Promise<AgentStore> {
  let server: StoreServer | undefined;
  let host = o.masterAddr;
  let port = o.masterPort;
  if (o.nodeRank === 0) {
    try {
      server = await StoreServer.start({ host: o.storeHost, port: o.masterPort, token: o.token });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint =
        code === 'EADDRINUSE'
          ? `port ${o.masterPort} is in use (another job?); choose another --master-port, or --standalone for a free one`
          : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
            ? `'${o.storeHost}' is not an address of this machine; node 0 must run where --master-addr points (or set --store-host)`
            : String(err instanceof Error ? err.message : err);
      throw new LaunchError(`node 0 could not start the rendezvous store on ${o.storeHost}:${o.masterPort}: ${hint}`);
    }
    host = connectHost(o);
    port = server.port;
  }
  const address = `${host}:${port}`;
  let root: StoreClient;
  try {
    root = await StoreClient.connect({ host, port, token: o.token, connectTimeoutMs: o.timeoutMs, timeoutMs: o.timeoutMs });
  } catch (err) {
    await server?.close();
    if (err instanceof MicsError && err.code === 'MICS_STORE_AUTH') {
      throw new LaunchError(
        `the store at ${address} rejected this node's token: every node of a job must have the same MICS_STORE_TOKEN ` +
          "(or the store there is another job's, still running on this port)",
      );
    }
    if (err instanceof MicsError && err.code === 'MICS_TIMEOUT') {
      throw new LaunchError(
        `node ${o.nodeRank} could not reach the rendezvous store at ${address} within ${o.timeoutMs / 1000} s: ` +
          'is node 0 running, with the same --master-addr and --master-port, and reachable from here?',
      );
    }
    throw new LaunchError(`node ${o.nodeRank} could not connect to the rendezvous store at ${address}: ${String(err)}`);
  }
  const store: AgentStore = { root, keys: root.withPrefix(`launch/${o.runId}`), server, port, address };
  try {
    await checkJob(store, o);
  } catch (err) {
    await closeStore(store);
    throw err;
  }
  return store;
}

/** Node 0 writes the job key; the others check it, so two jobs sharing a port fail clearly. */
async function checkJob(store: AgentStore, o: StoreOptions): Promise<void> {
  const mine: JobKey = { runId: o.runId, nnodes: o.nnodes };
  if (o.nodeRank === 0) {
    await store.root.set('launch/job', JSON.stringify(mine));
    return;
  }
  const raw = await store.root.get('launch/job', o.timeoutMs).catch((err: unknown) => {
    throw new LaunchError(`node ${o.nodeRank}: the store at ${store.address} has no job description: ${String(err)}`);
  });
  const theirs = JSON.parse(raw.toString('utf8')) as JobKey;
  if (theirs.runId !== mine.runId || theirs.nnodes !== mine.nnodes) {
    throw new LaunchError(
      `node ${o.nodeRank} was started with run id '${mine.runId}' and --nnodes ${mine.nnodes}, but node 0 ` +
        `(store ${store.address}) runs run id '${theirs.runId}' with --nnodes ${theirs.nnodes}: start every node with the same values`,
    );
  }
}

/** How long node 0 waits for the store's connections to close: a lost node's never does. */
const CLOSE_WAIT_MS = 1000;

/**
 * Closes the client and, on node 0, the store itself. The listener closes at once; connections
 * get {@link CLOSE_WAIT_MS} to end (one to a partitioned node would hold the server's close for
 * its whole grace period, while nothing is left to say to it).
 */
export async function closeStore(store: AgentStore): Promise<void> {
  store.root.close();
  if (store.server) await Promise.race([store.server.close(), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
}

/** Polling step of the rendezvous wait: how long one blocking wait lasts before checking for an abort. */
const WAIT_SLICE_MS = 500;

/**
 * Joins attempt `round`: announces `record`, waits until every node did (or `timeoutMs`), then
 * checks that all describe the same job and assigns ranks. Resolves with an {@link EndRecord}
 * instead when the attempt was ended before it completed (a launcher was interrupted and wrote
 * the attempt's end record).
 */
export async function joinRound(
  store: AgentStore,
  round: number,
  record: NodeRecord,
  timeoutMs: number,
): Promise<JobLayout | EndRecord> {
  const k = store.keys;
  const claims = await k.add(`r${round}/claim/${record.nodeRank}`, 1);
  if (claims > 1) {
    throw new LaunchError(
      `another agent already joined as node ${record.nodeRank} (run id '${record.runId}', store ${store.address}): every node needs its own --node-rank`,
    );
  }
  await k.set(`r${round}/node/${record.nodeRank}`, JSON.stringify(record));
  const nodeKeys = Array.from({ length: record.nnodes }, (_, i) => `r${round}/node/${i}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ended = await readEnd(store, round);
    if (ended) return ended;
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      await k.wait(nodeKeys, Math.min(left, WAIT_SLICE_MS));
      const values = await k.multiGet(nodeKeys, 0);
      const records = values.map((v) => JSON.parse(v.toString('utf8')) as NodeRecord);
      return planJob(records, record.nodeRank);
    } catch (err) {
      if (!(err instanceof MicsError && err.code === 'MICS_TIMEOUT')) throw err;
    }
  }
  const missing: number[] = [];
  for (let i = 0; i < record.nnodes; i++) if (!(await k.check([nodeKeys[i]]))) missing.push(i);
  throw new LaunchError(
    `rendezvous timed out after ${timeoutMs / 1000} s: node(s) ${missing.join(', ')} of ${record.nnodes} never joined ` +
      `(run id '${record.runId}', store ${store.address}, attempt ${round})`,
  );
}

/** The end record of attempt `round`, if one was written. */
export async function readEnd(store: AgentStore, round: number): Promise<EndRecord | undefined> {
  const key = `r${round}/end`;
  if (!(await store.keys.check([key]))) return undefined;
  return JSON.parse((await store.keys.get(key, 0)).toString('utf8')) as EndRecord;
}

/**
 * Writes how attempt `round` ended and returns the record that won. The first record wins,
 * with one exception: a rank failure or a lost node replaces a stored one it outranks
 * ({@link endOutranks}: a root cause or a lost node replaces a victim, an earlier cause a later
 * one), so the earliest root failure of any node wins even when another node's victim was
 * published first. Compare-and-swap: concurrent writers agree.
 */
export async function publishEnd(store: AgentStore, round: number, end: EndRecord): Promise<EndRecord> {
  const key = `r${round}/end`;
  const mine = Buffer.from(JSON.stringify(end), 'utf8');
  let expected: Buffer = Buffer.alloc(0);
  for (;;) {
    const stored = await store.keys.compareSet(key, expected, mine);
    if (stored.equals(mine)) return end;
    const current = JSON.parse(stored.toString('utf8')) as EndRecord;
    if (!endOutranks(end, current)) return current;
    expected = stored;
  }
}

/** Polling step while waiting for a root cause to replace a victim in the store. */
const END_POLL_MS = 50;

/**
 * The final end record of attempt `round`, read after this node's ranks were stopped. While the
 * stored root cause is a victim that lost a rank of another node (`localRanks` are this
 * node's), waits up to `timeoutMs` for that node to publish the real cause.
 */
export async function settledEnd(
  store: AgentStore,
  round: number,
  end: EndRecord,
  localRanks: ReadonlySet<number>,
  timeoutMs: number,
): Promise<EndRecord> {
  const deadline = Date.now() + timeoutMs;
  const remoteLoss = (e: EndRecord): boolean => {
    if (e.kind !== 'failure' || !isVictim(e.worker)) return false;
    const lost = lostRank(e.worker);
    return lost === undefined || !localRanks.has(lost);
  };
  let current = (await readEnd(store, round)) ?? end;
  while (remoteLoss(current) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, END_POLL_MS));
    current = (await readEnd(store, round)) ?? current;
  }
  return current;
}

/** Counts this node as succeeded in attempt `round`; the last node to succeed publishes success. */
export async function reportSuccess(store: AgentStore, round: number, nnodes: number): Promise<void> {
  const n = await store.keys.add(`r${round}/succeeded`, 1);
  if (n === nnodes) await publishEnd(store, round, { kind: 'success' });
}

/** The agents that announced themselves for attempt `round` (all of them once its rendezvous completed). */
export async function joinedNodes(store: AgentStore, round: number, nnodes: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < nnodes; i++) if (await store.keys.check([`r${round}/node/${i}`])) out.push(i);
  return out;
}

/** Polling step of node 0 while it waits for the other agents to leave. */
const LEAVE_POLL_MS = 50;

/**
 * Marks this agent as done with the store. Node 0 then waits (up to `timeoutMs`) until every
 * node in `expected` left or is gone (`gone`: lost, so it will not come), before the caller
 * closes the store, so no agent loses the store while it still reads the end of the job. Other
 * nodes give up on the store after `timeoutMs` (it may be unreachable).
 */
export async function leave(
  store: AgentStore,
  nodeRank: number,
  expected: readonly number[],
  timeoutMs: number,
  gone: (nodeRank: number) => boolean = () => false,
): Promise<void> {
  const mark = store.keys.set(`left/${nodeRank}`, '1');
  if (nodeRank !== 0) {
    await Promise.race([mark, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    return;
  }
  await mark;
  const deadline = Date.now() + timeoutMs;
  const waiting = new Set(expected.filter((k) => k !== 0));
  while (waiting.size > 0 && Date.now() < deadline) {
    for (const k of [...waiting]) {
      if (gone(k) || (await store.keys.check([`left/${k}`]))) waiting.delete(k);
    }
    if (waiting.size > 0) await new Promise((resolve) => setTimeout(resolve, LEAVE_POLL_MS));
  }
}
