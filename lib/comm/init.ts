/**
 * init(): the world communicator from the launcher's environment.
 *
 * Under mics-launch the launcher hosts the rendezvous store (MICS_STORE_HOSTED=1);
 * under any other starter (torchrun --no-python, srun, a shell loop) rank 0 hosts
 * it on MASTER_ADDR:MASTER_PORT. Every connection presents MICS_STORE_TOKEN; where
 * none was exported a fixed development token is used and rank 0 warns.
 */
import * as dgram from 'node:dgram';
import * as os from 'node:os';
import { loadAddon } from '../core/native';
import { backendStatuses } from '../core/capabilities';
import { StoreClient, StoreServer } from '../store';
import { MAX_TIMEOUT_MS } from '../store/protocol';
import { connectCommunicator, type Backend, type Communicator } from './communicator';
import { MicsError, describeValue, invalidArgument, optionsObject, valueText } from '../core/errors';
import { readRankEnvironment, type RankEnvironment } from './environment';
import { installFailureRecord } from './failure-record';
import { formationError, joinFormation, leaveFormation } from './formation';

/** Options of init(). */
export interface InitOptions {
  /** 'cpu', 'nccl', or 'auto' (nccl where a GPU and NCCL are present, else cpu). Default 'auto'. */
  backend?: 'cpu' | 'nccl' | 'auto';
  /** Default per-op and rendezvous timeout in ms (default MICS_TIMEOUT_MS or 300000). */
  timeoutMs?: number;
  /** The environment to read (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const DEV_TOKEN = 'mics-development-token-no-secret';

/** The local address that routes to `target` (what peers on other nodes can reach). */
async function localAddressToward(target: string): Promise<string> {
  if (target === 'localhost' || target.startsWith('127.')) return '127.0.0.1';
  const socket = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(9, target, () => resolve());
    });
    return socket.address().address;
  } finally {
    socket.close();
  }
}

/** 'auto' is nccl where the CUDA build, a device and NCCL are all present, else cpu. */
function chooseBackend(requested: 'cpu' | 'nccl' | 'auto'): Backend {
  if (requested === 'cpu') return 'cpu';
  const nccl = backendStatuses(loadAddon().addon.capabilities()).find((b) => b.name === 'nccl');
  if (nccl?.usable) return 'nccl';
  if (requested === 'nccl') throw new MicsError(`backend 'nccl' is not available here: ${nccl?.detail}`, 'MICS_UNAVAILABLE');
  return 'cpu';
}

/** MICS_TIMEOUT_MS, when set: a positive number of milliseconds, or an error naming the variable. */
function timeoutFromEnvironment(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.MICS_TIMEOUT_MS;
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!(value > 0) || !Number.isFinite(value)) {
    throw invalidArgument(`environment variable MICS_TIMEOUT_MS=${raw} is not valid: use a positive number of milliseconds`);
  }
  return value;
}

/** `env` as process.env has it: an object of strings (undefined for a variable left out). */
function checkEnvironment(env: unknown): NodeJS.ProcessEnv {
  if (typeof env !== 'object' || env === null) throw invalidArgument(`init: env ${describeValue(env)} is not valid: use an object of strings, as process.env`);
  for (const name of Object.keys(env)) {
    const value: unknown = (env as Record<string, unknown>)[name];
    if (value !== undefined && typeof value !== 'string') {
      throw invalidArgument(`init: env.${name} ${describeValue(value)} is not valid: environment values are strings`);
    }
  }
  return env as NodeJS.ProcessEnv;
}

/** Creates the world communicator of this job. Collective: every rank calls it. */
export async function init(given: InitOptions = {}): Promise<Communicator> {
  const options = optionsObject('init', given, {});
  const env = checkEnvironment(options.env ?? process.env);
  const requested = options.backend ?? 'auto';
  if (!['cpu', 'nccl', 'auto'].includes(requested)) {
    throw invalidArgument(`backend '${valueText(requested)}' is not valid: use 'cpu', 'nccl' or 'auto'`);
  }
  const requestedTimeout = options.timeoutMs ?? timeoutFromEnvironment(env) ?? 300_000;
  if (typeof requestedTimeout !== 'number' || !(requestedTimeout > 0)) {
    throw invalidArgument(`init: timeoutMs ${valueText(requestedTimeout)} is not valid: use a positive number of milliseconds`);
  }
  // Longer than Node's timers and the store's wire field hold (2^31 - 1 ms, 24.8 days),
  // Infinity included, means "as long as possible", not an error.
  const timeoutMs = Math.min(requestedTimeout, MAX_TIMEOUT_MS);
  const backend = chooseBackend(requested);
  const place = readRankEnvironment(env);
  installFailureRecord(place.errorFile);
  // Under --emulate-nodes LOCAL_RANK restarts per emulated node; the launcher's
  // agent-local rank is then the device index. MICS_CUDA_DEVICE (mics-launch --one-gpu)
  // names the device outright.
  const device = Number(env.MICS_CUDA_DEVICE || (env.MICS_AGENT_LOCAL_RANK ?? place.localRank));
  const host = env.MICS_SOCKET_ADDR || (await localAddressToward(place.masterAddr));
  const token = place.storeToken ?? DEV_TOKEN;

  let server: StoreServer | undefined;
  let store: StoreClient | undefined;
  if (place.worldSize > 1) {
    // Under mpirun or srun, say which variables were read and where the rendezvous is.
    if (place.source !== 'torchrun' && place.rank === 0) process.stderr.write(`mics: ${place.description}\n`);
    if (!place.storeHosted && place.rank === 0) {
      if (place.storeToken === undefined) {
        process.stderr.write(
          'mics: MICS_STORE_TOKEN is not set: the rendezvous store uses a fixed development token; ' +
            'export the same secret MICS_STORE_TOKEN on every rank (mics-launch does this for you; ' +
            'mpirun -x MICS_STORE_TOKEN, srun --export=ALL)\n',
        );
      }
      server = await StoreServer.start({ host: place.masterAddr, port: place.masterPort, token }).catch((err: unknown) => {
        const code = (err as NodeJS.ErrnoException)?.code;
        throw new MicsError(
          `init: rank ${place.rank} hosts the rendezvous store on ${place.masterAddr}:${place.masterPort} and cannot: ${(err as Error)?.message ?? String(err)}` +
            (code === 'EADDRINUSE' ? ' (another job or process holds MASTER_PORT: pick another port)' : ''),
          'MICS_SYSTEM',
          { rank: place.rank, op: 'init', cause: err },
        );
      });
    }
    store = await StoreClient.connect({
      host: place.masterAddr,
      port: place.masterPort,
      token,
      timeoutMs,
      connectTimeoutMs: timeoutMs,
    });
  }
  try {
    await joinFormation(store, place);
    const world = await connectCommunicator({
      backend,
      device,
      store: store?.withPrefix(`${place.keyPrefix}/world`),
      rank: place.rank,
      worldRanks: Array.from({ length: place.worldSize }, (_, r) => r),
      nodes: await gatherNodes(store, place, timeoutMs),
      host,
      name: 'world',
      timeoutMs,
    });
    await leaveFormation(store, place);
    world.setOnDestroy(() => {
      store?.close();
      void server?.close();
    });
    return world;
  } catch (err) {
    store?.close();
    await server?.close();
    throw formationError(err, place);
  }
}

/**
 * Every rank's node. The starter's node rank when it gave one (so emulated nodes can share a
 * machine); otherwise (mpirun across machines) nodes are numbered by host name in the order of
 * their lowest rank.
 */
async function gatherNodes(store: StoreClient | undefined, place: RankEnvironment, timeoutMs: number): Promise<number[]> {
  if (!store) return [place.node];
  const scoped = store.withPrefix(`${place.keyPrefix}/node`);
  await scoped.set(String(place.rank), place.nodeFromHostname ? `host:${os.hostname()}` : String(place.node));
  const values = (
    await scoped.multiGet(
      Array.from({ length: place.worldSize }, (_, r) => String(r)),
      timeoutMs,
    )
  ).map((v) => v.toString('utf8'));
  if (!place.nodeFromHostname) return values.map(Number);
  const numbers = new Map<string, number>();
  return values.map((host) => {
    if (!numbers.has(host)) numbers.set(host, numbers.size);
    return numbers.get(host) as number;
  });
}
