/**
 * The rendezvous store's client. One TCP connection carries any number of requests at
 * once: each has an id and is answered when the server is ready (a blocking get does
 * not hold up anything else). Prefix views share their parent's connection.
 *
 * Process lifetime: the socket holds the process alive only while requests are in
 * flight (or the connection is being set up), and every timer is unref'd or cleared,
 * so a client that is idle, or was closed, never keeps Node running.
 */
import * as net from 'node:net';
import { MicsError, valueText } from '../core/errors';
import {
  BodyReader,
  BodyWriter,
  DIGEST_BYTES,
  FrameDecoder,
  HANDSHAKE_MAX_FRAME_BYTES,
  MAGIC,
  MAX_TIMEOUT_MS,
  NONCE_BYTES,
  Op,
  PROTOCOL_VERSION,
  ProtocolError,
  Status,
  storeError,
  authProof,
  digestsEqual,
  newNonce,
  quoteKey,
  statusToCode,
  type OpCode,
} from './protocol';

/** Where the store is and how long to wait for it. */
export interface StoreClientOptions {
  /** The store's host (the launcher exports it as MASTER_ADDR). */
  host: string;
  /** The store's port (MASTER_PORT). */
  port: number;
  /** The launcher's token (MICS_STORE_TOKEN). Never logged or sent as such. */
  token: string;
  /** Default timeout of get, multiGet and wait, and reply deadline of every other request. Default 300000. */
  timeoutMs?: number;
  /** Keep retrying to connect (the server may not be up yet) for this long. Default 60000. */
  connectTimeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 300000;
const DEFAULT_CONNECT_TIMEOUT_MS = 60000;
/**
 * The server enforces a blocking request's timeout; the client's own deadline is later
 * by this much and only fires when the server stopped answering altogether.
 */
const BACKSTOP_GRACE_MS = 5000;
const FIRST_RETRY_DELAY_MS = 25;
const MAX_RETRY_DELAY_MS = 1000;

/** A connect attempt that failed in a way worth retrying; internal to connect(). */
class RetryableConnectError extends Error {}

interface Pending {
  /** What the request was, for messages: `get("group0/nccl_id")`. */
  what: string;
  /** Decodes an Ok reply and resolves; throws ProtocolError on a malformed one. */
  settle: (r: BodyReader) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** One authenticated connection: handshake, request ids, replies, failure of everything pending. */
class StoreConnection {
  /** host:port, for messages. */
  readonly address: string;
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
  private readonly clientNonce = newNonce();
  private readonly pending = new Map<number, Pending>();
  private state: 'hello' | 'auth' | 'ready' | 'closed' = 'hello';
  private serverNonce: Buffer = Buffer.alloc(0);
  private serverMaxFrameBytes = 0;
  private nextId = 1;
  private lastSocketError: NodeJS.ErrnoException | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;

  /** Connects and authenticates within `attemptTimeoutMs`. */
  static open(options: Required<StoreClientOptions>, attemptTimeoutMs: number): Promise<StoreConnection> {
    return new Promise((resolve, reject) => new StoreConnection(options, attemptTimeoutMs, resolve, reject));
  }

  private constructor(
    private readonly options: Required<StoreClientOptions>,
    attemptTimeoutMs: number,
    private readonly onReady: (conn: StoreConnection) => void,
    private readonly onFailed: (err: Error) => void,
  ) {
    this.address = `${options.host}:${options.port}`;
    this.socket = net.connect({ host: options.host, port: options.port });
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, 30000);
    this.handshakeTimer = setTimeout(
      () => this.abortHandshake(new RetryableConnectError(`no handshake with ${this.address} within ${attemptTimeoutMs} ms`)),
      attemptTimeoutMs,
    );
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.lastSocketError = err;
    });
    this.socket.on('close', () => this.onClose());
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** The default get/wait timeout from the options. */
  get defaultTimeoutMs(): number {
    return this.options.timeoutMs;
  }

  /** The client-side deadline of requests that do not wait for keys (set, add, ...). */
  get replyDeadlineMs(): number {
    return backstop(this.options.timeoutMs);
  }

  /**
   * Sends one request and resolves with its decoded reply. `deadlineMs` is the
   * client-side backstop; server-enforced timeouts come back as error replies.
   */
  request<T>(op: OpCode, what: string, fill: (w: BodyWriter) => void, decode: (r: BodyReader) => T, deadlineMs: number): Promise<T> {
    if (this.state !== 'ready') {
      return Promise.reject(storeError('MICS_STORE_CLOSED', `${what}: the client for the store at ${this.address} is closed`));
    }
    const id = this.allocateId();
    const w = new BodyWriter().u8(op).u32(id);
    fill(w);
    if (w.byteLength > this.serverMaxFrameBytes) {
      // The server would drop the whole connection over it; refuse just this request.
      return Promise.reject(
        storeError(
          'MICS_INVALID_ARGUMENT',
          `${what}: the request is ${w.byteLength} bytes, over the store's maxFrameBytes (${this.serverMaxFrameBytes}) at ${this.address}`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        // Tell the server to drop its waiter, or it would linger until its own timeout.
        if (this.socket.writable) this.socket.write(new BodyWriter().u8(Op.Cancel).u32(id).toFrame());
        this.updateRef();
        reject(storeError('MICS_TIMEOUT', `${what}: no reply from the store at ${this.address} within ${deadlineMs} ms`));
      }, deadlineMs);
      timer.unref(); // the socket holds the process while this is pending
      const settle = (r: BodyReader): void => {
        const value = decode(r);
        r.end();
        resolve(value);
      };
      this.pending.set(id, { what, settle, reject, timer });
      this.updateRef();
      this.socket.write(w.toFrame());
    });
  }

  /** Fails everything pending and closes the socket; idempotent. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.failAll(`the client for the store at ${this.address} was closed`);
    this.socket.end();
    this.socket.unref();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private allocateId(): number {
    // uint32 on the wire; skip ids still in flight after a wrap-around.
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.pending.has(this.nextId));
    return this.nextId;
  }

  /** Holds the process only while something is waited for; an idle client lets it exit. */
  private updateRef(): void {
    if (this.state === 'ready' && this.pending.size === 0) this.socket.unref();
    else this.socket.ref();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    try {
      this.decoder.push(chunk);
      for (let body = this.decoder.next(); body !== undefined; body = this.decoder.next()) {
        this.onFrame(new BodyReader(body));
        // onFrame may have closed the connection (TS cannot see that through the call).
        if ((this.state as string) === 'closed') return;
      }
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      if (this.state === 'ready') {
        this.state = 'closed';
        this.failAll(`the store at ${this.address} sent a malformed reply (${detail}); connection closed`);
        this.socket.destroy();
      } else {
        this.abortHandshake(
          err instanceof MicsError
            ? err
            : storeError('MICS_STORE_AUTH', `${this.address} does not speak the mics store protocol (${detail})`),
        );
      }
    }
  }

  private onFrame(r: BodyReader): void {
    const op = r.u8();
    const id = r.u32();
    if (this.state === 'hello') return this.onHello(op, r);
    if (this.state === 'auth') return this.onAuthResult(op, r);
    if (op !== Op.Response) throw new ProtocolError(`unexpected op ${op}`);
    const status = r.u8();
    const p = this.pending.get(id);
    if (!p) return; // it timed out here already; the late reply has no one to go to
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.updateRef();
    if (status !== Status.Ok) {
      const message = r.string();
      const peer = status === Status.PeerLost ? r.u32() : undefined;
      p.reject(storeError(statusToCode(status), `${p.what}: ${message} (store ${this.address})`, { peer }));
      return;
    }
    try {
      p.settle(r);
    } catch (err) {
      p.reject(storeError('MICS_STORE_CLOSED', `${p.what}: malformed reply from the store at ${this.address}`));
      throw err;
    }
  }

  private onHello(op: number, r: BodyReader): void {
    if (op !== Op.Hello) throw new ProtocolError(`expected a greeting, got op ${op}`);
    const magic = r.raw(MAGIC.length);
    if (!magic.equals(MAGIC)) throw new ProtocolError('the greeting is not a mics store greeting');
    const version = r.u8();
    if (version !== PROTOCOL_VERSION) {
      throw storeError(
        'MICS_STORE_AUTH',
        `the store at ${this.address} speaks protocol version ${version}, this client speaks ${PROTOCOL_VERSION}: use the same mics version on every node`,
      );
    }
    this.serverNonce = r.raw(NONCE_BYTES);
    this.serverMaxFrameBytes = r.u32();
    r.end();
    const proof = authProof(this.options.token, 'client', this.serverNonce, this.clientNonce);
    this.socket.write(
      new BodyWriter().u8(Op.Auth).u32(0).u8(PROTOCOL_VERSION).raw(this.clientNonce).raw(proof).toFrame(),
    );
    this.state = 'auth';
  }

  private onAuthResult(op: number, r: BodyReader): void {
    if (op !== Op.AuthResult) throw new ProtocolError(`expected an auth result, got op ${op}`);
    const status = r.u8();
    if (status !== Status.Ok) {
      throw storeError(
        'MICS_STORE_AUTH',
        `the store at ${this.address} rejected this client's token (is MICS_STORE_TOKEN the one the launcher exported?)`,
      );
    }
    const serverProof = r.raw(DIGEST_BYTES);
    r.end();
    const expected = authProof(this.options.token, 'server', this.serverNonce, this.clientNonce);
    if (!digestsEqual(serverProof, expected)) {
      throw storeError('MICS_STORE_AUTH', `the server at ${this.address} could not prove it knows the token; not trusting it`);
    }
    this.state = 'ready';
    this.decoder.maxFrameBytes = this.serverMaxFrameBytes;
    clearTimeout(this.handshakeTimer);
    this.updateRef();
    this.onReady(this);
  }

  private abortHandshake(err: Error): void {
    if (this.state === 'ready' || this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    this.socket.destroy();
    this.onFailed(err);
  }

  private onClose(): void {
    const reason = this.lastSocketError ? this.lastSocketError.message : 'closed by the server';
    if (this.state === 'hello') {
      // Refused, reset, or closed before the greeting: the server is not (fully) up yet.
      this.abortHandshake(new RetryableConnectError(reason));
    } else if (this.state === 'auth') {
      this.abortHandshake(storeError('MICS_STORE_AUTH', `the store at ${this.address} closed the connection during authentication (${reason})`));
    } else if (this.state === 'ready') {
      this.state = 'closed';
      this.failAll(`the connection to the store at ${this.address} was lost (${reason})`);
    }
  }

  private failAll(message: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(storeError('MICS_STORE_CLOSED', `${p.what}: ${message}`));
    }
  }
}

/**
 * A client of the rendezvous store. Create one with {@link StoreClient.connect};
 * {@link StoreClient.withPrefix} gives views that share its connection.
 *
 * Every method returns a Promise and reports failures as a MicsError
 * (bad arguments included, as rejections).
 */
export class StoreClient {
  private constructor(
    private readonly conn: StoreConnection,
    /** '' for the root view, else joined to keys with '/'. */
    private readonly prefix: string,
  ) {}

  /**
   * Connects and authenticates, retrying with backoff while the server is not up
   * (connection refused, reset) until `connectTimeoutMs`, then rejects with
   * MICS_TIMEOUT naming host:port. A rejected token fails at once with MICS_STORE_AUTH.
   */
  static async connect(options: StoreClientOptions): Promise<StoreClient> {
    const resolved = checkClientOptions(options);
    const deadline = Date.now() + resolved.connectTimeoutMs;
    let delay = FIRST_RETRY_DELAY_MS;
    let lastError = 'none';
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        return new StoreClient(await StoreConnection.open(resolved, remaining), '');
      } catch (err) {
        if (!(err instanceof RetryableConnectError)) throw err;
        lastError = err.message;
      }
      const left = deadline - Date.now();
      if (left <= 0) break;
      // Jitter spreads out the retries of many ranks started together.
      const wait = Math.min(left, delay / 2 + Math.random() * (delay / 2));
      await new Promise((resolve) => setTimeout(resolve, wait));
      delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
    }
    throw storeError(
      'MICS_TIMEOUT',
      `could not connect to the store at ${resolved.host}:${resolved.port} within ${resolved.connectTimeoutMs} ms (last error: ${lastError})`,
    );
  }

  /** Stores `value` (a string is stored as UTF-8) under `key`, waking anyone waiting for it. */
  async set(key: string, value: Uint8Array | string): Promise<void> {
    const k = this.key(key, 'set');
    const what = `set(${quoteKey(k)})`;
    const v = toBytes(value, `${what}: value`);
    return this.conn.request(Op.Set, what, (w) => w.string(k).bytes(v), () => undefined, this.conn.replyDeadlineMs);
  }

  /**
   * The value of `key`, waiting until some client sets it. Rejects with MICS_TIMEOUT
   * naming the key after `timeoutMs` (default: the client's timeoutMs; 0 = do not wait).
   */
  async get(key: string, timeoutMs?: number): Promise<Buffer> {
    const k = this.key(key, 'get');
    const what = `get(${quoteKey(k)})`;
    const t = this.timeout(timeoutMs, what);
    return this.conn.request(Op.Get, what, (w) => w.u32(t).string(k), (r) => r.bytes(), backstop(t));
  }

  /** The values of `keys`, in order, once all of them exist; MICS_TIMEOUT names the missing ones. */
  async multiGet(keys: string[], timeoutMs?: number): Promise<Buffer[]> {
    const ks = this.keys(keys, 'multiGet');
    const what = `multiGet(${describeKeys(ks)})`;
    const t = this.timeout(timeoutMs, what);
    return this.conn.request(Op.MultiGet, what, (w) => writeKeys(w.u32(t), ks), readValues, backstop(t));
  }

  /** Stores every entry in one step: a waiter never sees some of them without the others. */
  async multiSet(entries: [string, Uint8Array | string][]): Promise<void> {
    if (!Array.isArray(entries)) {
      throw invalid(`multiSet: entries must be an array of [key, value] pairs, got ${describe(entries)}`);
    }
    const pairs = entries.map((entry, i): [string, Buffer] => {
      if (!Array.isArray(entry) || entry.length !== 2) {
        throw invalid(`multiSet: entries[${i}] must be a [key, value] pair, got ${describe(entry)}`);
      }
      const k = this.key(entry[0], `multiSet: entries[${i}]`);
      return [k, toBytes(entry[1], `multiSet: value of ${quoteKey(k)}`)];
    });
    const what = `multiSet(${describeKeys(pairs.map(([k]) => k))})`;
    return this.conn.request(
      Op.MultiSet,
      what,
      (w) => {
        w.u32(pairs.length);
        for (const [k, v] of pairs) w.string(k).bytes(v);
      },
      () => undefined,
      this.conn.replyDeadlineMs,
    );
  }

  /**
   * Atomically adds `delta` (a safe integer, may be negative) to the counter at `key`
   * (a missing key counts as 0) and returns the new value. The value is stored as
   * decimal text, so `get` reads it as e.g. "3".
   */
  async add(key: string, delta: number): Promise<number> {
    const k = this.key(key, 'add');
    const what = `add(${quoteKey(k)})`;
    if (typeof delta !== 'number' || !Number.isSafeInteger(delta)) {
      throw invalid(`${what}: delta must be a safe integer, got ${describe(delta)}`);
    }
    return this.conn.request(Op.Add, what, (w) => w.string(k).f64(delta), (r) => r.f64(), this.conn.replyDeadlineMs);
  }

  /**
   * torch's compare_set: when `key` holds `expected`, or is missing and `expected` is
   * empty, stores `desired`. Returns what the key holds afterwards: `desired` on
   * success, the current value otherwise, and an empty Buffer when the key is missing
   * (torch returns `expected` in that last case).
   */
  async compareSet(key: string, expected: Uint8Array | string, desired: Uint8Array | string): Promise<Buffer> {
    const k = this.key(key, 'compareSet');
    const what = `compareSet(${quoteKey(k)})`;
    const e = toBytes(expected, `${what}: expected`);
    const d = toBytes(desired, `${what}: desired`);
    return this.conn.request(Op.CompareSet, what, (w) => w.string(k).bytes(e).bytes(d), (r) => r.bytes(), this.conn.replyDeadlineMs);
  }

  /** Resolves once every key exists; MICS_TIMEOUT after `timeoutMs` names the missing ones. */
  async wait(keys: string[], timeoutMs?: number): Promise<void> {
    const ks = this.keys(keys, 'wait');
    const what = `wait(${describeKeys(ks)})`;
    const t = this.timeout(timeoutMs, what);
    return this.conn.request(Op.Wait, what, (w) => writeKeys(w.u32(t), ks), () => undefined, backstop(t));
  }

  /** Whether every key exists right now (no waiting). */
  async check(keys: string[]): Promise<boolean> {
    const ks = this.keys(keys, 'check');
    return this.conn.request(Op.Check, `check(${describeKeys(ks)})`, (w) => writeKeys(w, ks), (r) => r.u8() === 1, this.conn.replyDeadlineMs);
  }

  /** Removes `key`; true when it existed. */
  async delete(key: string): Promise<boolean> {
    const k = this.key(key, 'delete');
    return this.conn.request(Op.Delete, `delete(${quoteKey(k)})`, (w) => w.string(k), (r) => r.u8() === 1, this.conn.replyDeadlineMs);
  }

  /**
   * How many keys exist: all of the store's for the root client, only those under the
   * prefix for a {@link StoreClient.withPrefix} view (unlike torch, whose PrefixStore
   * counts the whole store).
   */
  async numKeys(): Promise<number> {
    return this.conn.request(Op.NumKeys, 'numKeys()', (w) => w.string(this.prefix), (r) => r.u32(), this.conn.replyDeadlineMs);
  }

  /**
   * Declares that this connection stands for rank `rank` of the group whose keys live under
   * this view's prefix, while the group forms. Should the connection close before
   * {@link StoreClient.unregister} (the process exited or was killed), every get, multiGet
   * and wait for a missing key under the prefix fails at once with MICS_PEER_LOST naming
   * `rank` (`peer`), on every connection, and so do later ones and later registrations: the
   * group can no longer form. A rank registered by another live connection is refused
   * (MICS_INVALID_ARGUMENT: two processes with the same rank).
   */
  async register(rank: number): Promise<void> {
    const scope = this.scope('register');
    if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 0 || rank > 0xffffffff) {
      throw invalid(`register: rank must be an integer in 0..${0xffffffff}, got ${describe(rank)}`);
    }
    const what = `register(${quoteKey(scope)}, ${rank})`;
    return this.conn.request(Op.Register, what, (w) => w.string(scope).u32(rank), () => undefined, this.conn.replyDeadlineMs);
  }

  /** Ends {@link StoreClient.register}: the group has formed, and leaving it is no longer a loss. */
  async unregister(): Promise<void> {
    const scope = this.scope('unregister');
    return this.conn.request(Op.Unregister, `unregister(${quoteKey(scope)})`, (w) => w.string(scope), () => undefined, this.conn.replyDeadlineMs);
  }

  /**
   * A view whose keys are `${prefix}/${key}` (nested views join prefixes with '/'),
   * sharing this client's connection. Closing any view closes the shared connection.
   */
  withPrefix(prefix: string): StoreClient {
    if (typeof prefix !== 'string' || prefix === '') {
      throw invalid(`withPrefix: prefix must be a non-empty string, got ${describe(prefix)}`);
    }
    return new StoreClient(this.conn, this.prefix === '' ? prefix : `${this.prefix}/${prefix}`);
  }

  /**
   * Closes the connection (shared with every view of it): pending requests reject with
   * MICS_STORE_CLOSED, later calls too. Idempotent.
   */
  close(): void {
    this.conn.close();
  }

  private scope(what: string): string {
    if (this.prefix === '') throw invalid(`${what}: call it on a prefix view (withPrefix): the prefix is the group's scope`);
    return this.prefix;
  }

  private key(key: unknown, what: string): string {
    if (typeof key !== 'string' || key === '') {
      throw invalid(`${what}: key must be a non-empty string, got ${describe(key)}`);
    }
    return this.prefix === '' ? key : `${this.prefix}/${key}`;
  }

  private keys(keys: unknown, what: string): string[] {
    if (!Array.isArray(keys)) throw invalid(`${what}: keys must be an array of non-empty strings, got ${describe(keys)}`);
    return keys.map((key: unknown, i) => this.key(key, `${what}: keys[${i}]`));
  }

  private timeout(timeoutMs: unknown, what: string): number {
    if (timeoutMs === undefined) return this.conn.defaultTimeoutMs;
    return checkTimeout(timeoutMs, `${what}: timeoutMs`);
  }
}

/** The client's own deadline for a request the server times out at `t`. */
function backstop(t: number): number {
  return Math.min(t + BACKSTOP_GRACE_MS, MAX_TIMEOUT_MS);
}

function writeKeys(w: BodyWriter, keys: string[]): BodyWriter {
  w.u32(keys.length);
  for (const k of keys) w.string(k);
  return w;
}

function readValues(r: BodyReader): Buffer[] {
  const n = r.count(4);
  const values: Buffer[] = [];
  for (let i = 0; i < n; i++) values.push(r.bytes());
  return values;
}

function toBytes(value: unknown, what: string): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw invalid(`${what} must be a string or a Uint8Array (Buffer), got ${describe(value)}`);
}

function checkTimeout(value: unknown, what: string): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || value > MAX_TIMEOUT_MS) {
    throw invalid(`${what} must be a number of milliseconds in 0..${MAX_TIMEOUT_MS}, got ${describe(value)}`);
  }
  return Math.ceil(value);
}

function invalid(message: string): MicsError {
  return storeError('MICS_INVALID_ARGUMENT', message);
}

/** A value as shown in an error message: short, with its type when that helps. */
function describe(value: unknown): string {
  if (typeof value === 'string') return value === '' ? 'an empty string' : quoteKey(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return `${valueText(value)} (${typeof value})`;
  }
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return `a ${typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value}`;
}

function describeKeys(keys: string[]): string {
  const shown = keys.slice(0, 4).map(quoteKey).join(', ');
  return keys.length > 4 ? `${shown}, ... ${keys.length - 4} more` : shown;
}

function checkClientOptions(options: StoreClientOptions): Required<StoreClientOptions> {
  if (typeof options !== 'object' || options === null) {
    throw invalid(`StoreClient.connect: options must be an object, got ${describe(options)}`);
  }
  const { host, port, token } = options;
  if (typeof host !== 'string' || host === '') {
    throw invalid(`StoreClient.connect: host must be a non-empty string, got ${describe(host)}`);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(`StoreClient.connect: port must be an integer in 1..65535, got ${describe(port)}`);
  }
  if (typeof token !== 'string' || token === '') {
    throw invalid('StoreClient.connect: token must be a non-empty string (the launcher exports MICS_STORE_TOKEN)');
  }
  const timeoutMs = options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : checkTimeout(options.timeoutMs, 'StoreClient.connect: timeoutMs');
  const connectTimeoutMs =
    options.connectTimeoutMs === undefined
      ? DEFAULT_CONNECT_TIMEOUT_MS
      : checkTimeout(options.connectTimeoutMs, 'StoreClient.connect: connectTimeoutMs');
  if (connectTimeoutMs === 0) {
    throw invalid('StoreClient.connect: connectTimeoutMs must be positive, got 0');
  }
  return { host, port, token, timeoutMs, connectTimeoutMs };
}
