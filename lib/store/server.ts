/**
 * The rendezvous store's server: an in-memory key-value map behind a TCP listener.
 *
 * Each connection first receives a greeting with a fresh nonce and must answer with a
 * proof that it knows the token (see protocol.ts) as its first frame, within
 * authTimeoutMs. Anything else (wrong proof, garbage, an oversized or malformed frame)
 * closes that connection alone: one bad peer never disturbs the map or other peers.
 *
 * Blocking reads (get, multiGet, wait) become waiters that are answered when their keys
 * arrive, so they never hold up other requests on the same connection; their timeouts
 * are enforced here, where the keys are, so a timeout of 0 means "check once".
 *
 * Membership: while a group forms, each member's connection registers as that member of
 * the group's key scope. A registered connection that closes (its process exited or was
 * killed) marks the scope lost: every waiter on a missing key under the scope fails at
 * once with PeerLost naming the member, and so does every later one, since the group can
 * no longer form. Members unregister once it has formed, after which leaving is normal.
 */
import * as net from 'node:net';
import { MicsError, describeValue, valueText } from '../core/errors';
import {
  BodyReader,
  BodyWriter,
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  HANDSHAKE_MAX_FRAME_BYTES,
  MAGIC,
  MAX_MAX_FRAME_BYTES,
  MAX_TIMEOUT_MS,
  MIN_MAX_FRAME_BYTES,
  NONCE_BYTES,
  DIGEST_BYTES,
  Op,
  PROTOCOL_VERSION,
  ProtocolError,
  Status,
  storeError,
  authProof,
  digestsEqual,
  newNonce,
  quoteKey,
  type StatusCode,
} from './protocol';

/** How a StoreServer listens and whom it admits. */
export interface StoreServerOptions {
  /** Address to bind, e.g. '127.0.0.1' or '0.0.0.0'. */
  host: string;
  /** Port to bind; 0 picks a free one (read it back from `StoreServer.port`). */
  port: number;
  /** Shared secret every connection must prove it knows. Never logged or sent. */
  token: string;
  /** Largest frame body accepted or sent, in bytes. Default 16 MiB. */
  maxFrameBytes?: number;
  /** A connection that has not authenticated after this many ms is closed. Default 10000. */
  authTimeoutMs?: number;
}

const DEFAULT_AUTH_TIMEOUT_MS = 10000;
/** After end(), how long a peer gets to close its side before the socket is destroyed. */
const END_GRACE_MS = 1000;

/** One blocking request (get, multiGet, wait) waiting for its keys. */
interface Waiter {
  conn: Connection;
  id: number;
  keys: string[];
  timer: NodeJS.Timeout;
  /** Answers the request; called once every key exists. */
  ready: () => void;
}

/** Per-connection state. */
interface Connection {
  socket: net.Socket;
  decoder: FrameDecoder;
  /** 'greeted': waiting for the auth frame; 'rejected': auth failed, input is ignored. */
  state: 'greeted' | 'ready' | 'rejected';
  serverNonce: Buffer;
  authTimer: NodeJS.Timeout | undefined;
  waiters: Set<Waiter>;
  /** Scope -> the member this connection registered as there. */
  members: Map<string, number>;
}

/** Where a scope's group stands: who registered, and who was lost (the first one). */
interface Scope {
  members: Map<number, Connection>;
  lost: number | undefined;
  /** Members that unregistered: the group formed with them, so a second one is a duplicate. */
  left: Set<number>;
}

/**
 * A token-authenticated TCP key-value store for rendezvous (what torch's TCPStore
 * offers, plus authentication). Start it with {@link StoreServer.start}.
 */
export class StoreServer {
  /** The address actually bound. */
  readonly host: string;
  /** The port actually bound (the chosen one when `port` was 0). */
  readonly port: number;

  private readonly data = new Map<string, Buffer>();
  private readonly waitersByKey = new Map<string, Set<Waiter>>();
  private readonly connections = new Set<Connection>();
  private readonly scopes = new Map<string, Scope>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly listener: net.Server,
    private readonly token: string,
    private readonly maxFrameBytes: number,
    private readonly authTimeoutMs: number,
  ) {
    const address = listener.address() as net.AddressInfo;
    this.host = address.address;
    this.port = address.port;
    listener.on('connection', (socket) => this.accept(socket));
  }

  /**
   * Binds and starts serving. Rejects with MICS_INVALID_ARGUMENT on bad options, or
   * with the system error (code EADDRINUSE, ...) when the address cannot be bound.
   */
  static async start(options: StoreServerOptions): Promise<StoreServer> {
    const { host, port, token } = checkServerOptions(options);
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const authTimeoutMs = options.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS;
    const listener = net.createServer();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const wrapped = new Error(`store could not listen on ${host}:${port}: ${err.message}`, { cause: err });
        reject(Object.assign(wrapped, { code: err.code }));
      };
      listener.once('error', onError);
      listener.listen({ host, port }, () => {
        listener.off('error', onError);
        resolve();
      });
    });
    // A listener error after binding (rare: EMFILE on accept) must not crash the
    // process hosting the store; the listener keeps going.
    listener.on('error', () => undefined);
    return new StoreServer(listener, token, maxFrameBytes, authTimeoutMs);
  }

  /**
   * Stops listening, answers every pending get/wait with MICS_STORE_CLOSED and closes
   * every connection. Resolves once all are closed; calling it again returns the same
   * promise.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => {
        // The callback runs once the listener AND every accepted connection are closed.
        this.listener.close(() => resolve());
        for (const conn of this.connections) {
          for (const waiter of [...conn.waiters]) {
            this.removeWaiter(waiter);
            this.fail(conn, waiter.id, Status.Closed, 'the store server is closing');
          }
          endSocket(conn.socket);
        }
      });
    }
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    // Detects peers that vanished without a FIN (a node that lost power).
    socket.setKeepAlive(true, 30000);
    const conn: Connection = {
      socket,
      decoder: new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES),
      state: 'greeted',
      serverNonce: newNonce(),
      authTimer: undefined,
      waiters: new Set(),
      members: new Map(),
    };
    this.connections.add(conn);
    // unref: a pending auth deadline alone must not keep the process alive.
    conn.authTimer = setTimeout(() => socket.destroy(), this.authTimeoutMs).unref();
    // Errors (ECONNRESET from a peer that went away) are followed by 'close'; without a
    // listener they would crash the process hosting the store.
    socket.on('error', () => undefined);
    socket.on('close', () => this.drop(conn));
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.write(
      new BodyWriter()
        .u8(Op.Hello)
        .u32(0)
        .raw(MAGIC)
        .u8(PROTOCOL_VERSION)
        .raw(conn.serverNonce)
        .u32(this.maxFrameBytes)
        .toFrame(),
    );
  }

  private drop(conn: Connection): void {
    clearTimeout(conn.authTimer);
    for (const waiter of [...conn.waiters]) this.removeWaiter(waiter);
    this.connections.delete(conn);
    for (const [name, member] of conn.members) {
      const scope = this.scopes.get(name);
      if (!scope) continue;
      scope.members.delete(member);
      // A store that is closing drops everyone: that is no member's fault.
      if (scope.lost !== undefined || this.closing) continue;
      scope.lost = member;
      this.failLostScope(name, member);
    }
  }

  private register(conn: Connection, id: number, r: BodyReader): void {
    const name = r.string();
    const member = r.u32();
    r.end();
    if (this.badKey(conn, id, name)) return;
    const scope = this.scopes.get(name) ?? { members: new Map<number, Connection>(), lost: undefined, left: new Set<number>() };
    this.scopes.set(name, scope);
    if (scope.lost !== undefined) {
      this.failPeerLost(conn, id, name, scope.lost);
      return;
    }
    if (scope.left.has(member)) {
      this.fail(
        conn,
        id,
        Status.InvalidArgument,
        `register(${quoteKey(name)}, ${member}): rank ${member} already joined this group (two processes started with the same rank?)`,
      );
      return;
    }
    const holder = scope.members.get(member);
    const mine = conn.members.get(name);
    if ((holder !== undefined && holder !== conn) || (mine !== undefined && mine !== member)) {
      const why =
        holder !== undefined && holder !== conn
          ? `another connection already registered as rank ${member} (two processes started with the same rank?)`
          : `this connection already registered as rank ${mine}`;
      this.fail(conn, id, Status.InvalidArgument, `register(${quoteKey(name)}, ${member}): ${why}`);
      return;
    }
    scope.members.set(member, conn);
    conn.members.set(name, member);
    this.respond(conn, id);
  }

  private unregister(conn: Connection, id: number, r: BodyReader): void {
    const name = r.string();
    r.end();
    if (this.badKey(conn, id, name)) return;
    const member = conn.members.get(name);
    const scope = this.scopes.get(name);
    conn.members.delete(name);
    if (scope && member !== undefined) {
      scope.members.delete(member);
      scope.left.add(member);
    }
    this.respond(conn, id);
  }

  /** The lost member of a scope that covers one of `keys` that is missing, if any. */
  private lostOwner(keys: string[]): { scope: string; member: number } | undefined {
    for (const [name, scope] of this.scopes) {
      if (scope.lost === undefined) continue;
      const under = `${name}/`;
      if (keys.some((key) => key.startsWith(under) && !this.data.has(key))) return { scope: name, member: scope.lost };
    }
    return undefined;
  }

  /** Fails every waiter that waits for a missing key under a scope whose member `member` was lost. */
  private failLostScope(name: string, member: number): void {
    const under = `${name}/`;
    for (const conn of this.connections) {
      for (const waiter of [...conn.waiters]) {
        if (!waiter.keys.some((key) => key.startsWith(under) && !this.data.has(key))) continue;
        this.removeWaiter(waiter);
        this.failPeerLost(conn, waiter.id, name, member);
      }
    }
  }

  private failPeerLost(conn: Connection, id: number, scope: string, member: number): void {
    const message =
      `rank ${member} lost its connection to the store before its group under ${quoteKey(scope)} had formed ` +
      '(its process exited or was killed)';
    this.send(conn, new BodyWriter().u8(Op.Response).u32(id).u8(Status.PeerLost).string(message).u32(member));
  }

  private onData(conn: Connection, chunk: Buffer): void {
    // Once closing, every waiter has been answered; new requests would only dangle.
    if (conn.state === 'rejected' || this.closing) return;
    try {
      conn.decoder.push(chunk);
      for (let body = conn.decoder.next(); body !== undefined; body = conn.decoder.next()) {
        this.onFrame(conn, new BodyReader(body));
        // A failed auth turns the connection to 'rejected' inside onFrame.
        if ((conn.state as string) === 'rejected' || conn.socket.destroyed) return;
      }
    } catch {
      // Malformed, oversized, or a request before auth: this peer is broken or hostile.
      // Close it without a word (an unauthenticated peer learns nothing) and carry on.
      conn.socket.destroy();
    }
  }

  private onFrame(conn: Connection, r: BodyReader): void {
    const op = r.u8();
    const id = r.u32();
    if (conn.state === 'greeted') {
      if (op !== Op.Auth) throw new ProtocolError('the first frame must authenticate');
      this.authenticate(conn, r);
      return;
    }
    switch (op) {
      case Op.Set: {
        const key = r.string();
        const value = r.bytes();
        r.end();
        if (this.badKey(conn, id, key)) return;
        this.data.set(key, value);
        this.notify([key]);
        this.respond(conn, id);
        return;
      }
      case Op.MultiSet: {
        const n = r.count(8);
        const entries: [string, Buffer][] = [];
        for (let i = 0; i < n; i++) entries.push([r.string(), r.bytes()]);
        r.end();
        if (entries.some(([key]) => this.badKey(conn, id, key))) return;
        // All keys land before any waiter runs, so a multiGet never sees half of them.
        for (const [key, value] of entries) this.data.set(key, value);
        this.notify(entries.map(([key]) => key));
        this.respond(conn, id);
        return;
      }
      case Op.Get: {
        const timeoutMs = r.u32();
        const key = r.string();
        r.end();
        if (this.badKey(conn, id, key)) return;
        this.whenPresent(conn, id, [key], timeoutMs, () => {
          const value = this.data.get(key) as Buffer;
          this.respond(conn, id, (w) => w.bytes(value));
        });
        return;
      }
      case Op.MultiGet:
      case Op.Wait: {
        const timeoutMs = r.u32();
        const keys = readKeys(r);
        r.end();
        if (keys.some((key) => this.badKey(conn, id, key))) return;
        this.whenPresent(conn, id, keys, timeoutMs, () => {
          if (op === Op.Wait) return this.respond(conn, id);
          const values = keys.map((key) => this.data.get(key) as Buffer);
          this.respond(conn, id, (w) => {
            w.u32(values.length);
            for (const value of values) w.bytes(value);
          });
        });
        return;
      }
      case Op.Add:
        return this.add(conn, id, r);
      case Op.CompareSet:
        return this.compareSet(conn, id, r);
      case Op.Check: {
        const keys = readKeys(r);
        r.end();
        if (keys.some((key) => this.badKey(conn, id, key))) return;
        const all = keys.every((key) => this.data.has(key));
        this.respond(conn, id, (w) => w.u8(all ? 1 : 0));
        return;
      }
      case Op.Delete: {
        const key = r.string();
        r.end();
        if (this.badKey(conn, id, key)) return;
        const existed = this.data.delete(key);
        this.respond(conn, id, (w) => w.u8(existed ? 1 : 0));
        return;
      }
      case Op.NumKeys: {
        const prefix = r.string();
        r.end();
        this.respond(conn, id, (w) => w.u32(this.countKeys(prefix)));
        return;
      }
      case Op.Register:
        return this.register(conn, id, r);
      case Op.Unregister:
        return this.unregister(conn, id, r);
      case Op.Cancel: {
        r.end();
        for (const waiter of [...conn.waiters]) if (waiter.id === id) this.removeWaiter(waiter);
        return;
      }
      default:
        throw new ProtocolError(`unknown op ${op}`);
    }
  }

  private authenticate(conn: Connection, r: BodyReader): void {
    const version = r.u8();
    const clientNonce = r.raw(NONCE_BYTES);
    const proof = r.raw(DIGEST_BYTES);
    r.end();
    clearTimeout(conn.authTimer);
    conn.authTimer = undefined;
    const expected = authProof(this.token, 'client', conn.serverNonce, clientNonce);
    if (version !== PROTOCOL_VERSION || !digestsEqual(proof, expected)) {
      // Say "rejected" (so the client can report a clear MICS_STORE_AUTH instead of a
      // bare disconnect), but nothing about why, then stop listening to this peer.
      conn.state = 'rejected';
      conn.socket.write(new BodyWriter().u8(Op.AuthResult).u32(0).u8(Status.Auth).toFrame());
      endSocket(conn.socket);
      return;
    }
    conn.state = 'ready';
    conn.decoder.maxFrameBytes = this.maxFrameBytes;
    // Mutual: the client checks this, so an impostor on the port cannot feed ranks
    // forged rendezvous data.
    const serverProof = authProof(this.token, 'server', conn.serverNonce, clientNonce);
    conn.socket.write(new BodyWriter().u8(Op.AuthResult).u32(0).u8(Status.Ok).raw(serverProof).toFrame());
  }

  private add(conn: Connection, id: number, r: BodyReader): void {
    const key = r.string();
    const delta = r.f64();
    r.end();
    if (this.badKey(conn, id, key)) return;
    if (!Number.isSafeInteger(delta)) {
      this.fail(conn, id, Status.InvalidArgument, `add(${quoteKey(key)}): delta ${delta} is not a safe integer`);
      return;
    }
    const current = this.data.get(key);
    let base = 0n;
    if (current !== undefined) {
      const text = current.toString('utf8');
      // The value is decimal text (torch's convention), so other clients can read it with get().
      if (!/^-?\d{1,20}$/.test(text)) {
        this.fail(
          conn,
          id,
          Status.InvalidArgument,
          `add(${quoteKey(key)}): the key holds ${current.length} bytes that are not a decimal integer`,
        );
        return;
      }
      base = BigInt(text);
    }
    const next = base + BigInt(delta);
    if (next > BigInt(Number.MAX_SAFE_INTEGER) || next < BigInt(Number.MIN_SAFE_INTEGER)) {
      this.fail(conn, id, Status.InvalidArgument, `add(${quoteKey(key)}): result ${next} is not a safe integer`);
      return;
    }
    this.data.set(key, Buffer.from(next.toString(), 'utf8'));
    this.notify([key]);
    this.respond(conn, id, (w) => w.f64(Number(next)));
  }

  /**
   * torch's compare_set: a missing key with an empty `expected` is created; a present
   * key equal to `expected` is replaced. The reply is what the key holds afterwards,
   * and empty when it is still missing (torch replies `expected` there, which its own
   * source calls lying; empty lets a compare-and-swap loop see that nothing is stored).
   */
  private compareSet(conn: Connection, id: number, r: BodyReader): void {
    const key = r.string();
    const expected = r.bytes();
    const desired = r.bytes();
    r.end();
    if (this.badKey(conn, id, key)) return;
    const current = this.data.get(key);
    const swap = current === undefined ? expected.length === 0 : current.equals(expected);
    if (swap) {
      this.data.set(key, desired);
      this.notify([key]);
    }
    const now = this.data.get(key) ?? Buffer.alloc(0);
    this.respond(conn, id, (w) => w.bytes(now));
  }

  private countKeys(prefix: string): number {
    if (prefix === '') return this.data.size;
    const scope = `${prefix}/`;
    let n = 0;
    for (const key of this.data.keys()) if (key.startsWith(scope)) n++;
    return n;
  }

  /** Runs `ready` once every key exists (now, or when the last one is set), else fails at the timeout. */
  private whenPresent(conn: Connection, id: number, keys: string[], wireTimeoutMs: number, ready: () => void): void {
    // A raw client may send up to 2^32-1; setTimeout would turn that into 1 ms.
    const timeoutMs = Math.min(wireTimeoutMs, MAX_TIMEOUT_MS);
    if (keys.every((key) => this.data.has(key))) {
      ready();
      return;
    }
    // A key that a lost member would have set never comes.
    const lost = this.lostOwner(keys);
    if (lost) {
      this.failPeerLost(conn, id, lost.scope, lost.member);
      return;
    }
    const waiter: Waiter = {
      conn,
      id,
      keys,
      ready,
      // unref: the listener keeps the process alive while serving; a timer alone must not.
      timer: setTimeout(() => {
        this.removeWaiter(waiter);
        const missing = keys.filter((key) => !this.data.has(key)).map(quoteKey);
        const noun = missing.length === 1 ? 'key' : 'keys';
        this.fail(conn, id, Status.Timeout, `timed out after ${timeoutMs} ms waiting for ${noun} ${missing.join(', ')}`);
      }, timeoutMs).unref(),
    };
    conn.waiters.add(waiter);
    for (const key of keys) {
      let set = this.waitersByKey.get(key);
      if (!set) this.waitersByKey.set(key, (set = new Set()));
      set.add(waiter);
    }
  }

  /** Wakes the waiters on `keys` whose keys now all exist. */
  private notify(keys: string[]): void {
    for (const key of keys) {
      const set = this.waitersByKey.get(key);
      if (!set) continue;
      // A waiter's other keys may have been deleted meanwhile, so check them all.
      for (const waiter of [...set]) {
        if (!waiter.keys.every((k) => this.data.has(k))) continue;
        this.removeWaiter(waiter);
        waiter.ready();
      }
    }
  }

  private removeWaiter(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    waiter.conn.waiters.delete(waiter);
    for (const key of waiter.keys) {
      const set = this.waitersByKey.get(key);
      if (!set) continue;
      set.delete(waiter);
      if (set.size === 0) this.waitersByKey.delete(key);
    }
  }

  /** Answers an empty key with an error (a raw client can send one; ours checks first). */
  private badKey(conn: Connection, id: number, key: string): boolean {
    if (key.length > 0) return false;
    this.fail(conn, id, Status.InvalidArgument, 'keys must be non-empty strings');
    return true;
  }

  private respond(conn: Connection, id: number, payload?: (w: BodyWriter) => void): void {
    const w = new BodyWriter().u8(Op.Response).u32(id).u8(Status.Ok);
    payload?.(w);
    if (w.byteLength > this.maxFrameBytes) {
      // The client would close the connection on an oversized frame; fail this request only.
      this.fail(
        conn,
        id,
        Status.InvalidArgument,
        `the reply of ${w.byteLength} bytes exceeds maxFrameBytes (${this.maxFrameBytes}); fetch fewer keys at once`,
      );
      return;
    }
    this.send(conn, w);
  }

  private fail(conn: Connection, id: number, status: StatusCode, message: string): void {
    this.send(conn, new BodyWriter().u8(Op.Response).u32(id).u8(status).string(message));
  }

  private send(conn: Connection, w: BodyWriter): void {
    if (conn.socket.writable) conn.socket.write(w.toFrame());
  }
}

function readKeys(r: BodyReader): string[] {
  const n = r.count(4);
  const keys: string[] = [];
  for (let i = 0; i < n; i++) keys.push(r.string());
  return keys;
}

/**
 * Half-closes politely (so the peer reads what was written before the FIN, which a
 * destroy with unread input could turn into a reset), then destroys after a grace
 * period in case the peer never closes its side.
 */
function endSocket(socket: net.Socket): void {
  socket.end();
  setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
}

function invalid(message: string): MicsError {
  return storeError('MICS_INVALID_ARGUMENT', message);
}

function checkServerOptions(options: StoreServerOptions): { host: string; port: number; token: string } {
  if (typeof options !== 'object' || options === null) {
    throw invalid(`StoreServer.start: options must be an object, got ${valueText(options)}`);
  }
  const { host, port, token, maxFrameBytes, authTimeoutMs } = options;
  if (typeof host !== 'string' || host === '') {
    throw invalid(`StoreServer.start: host must be a non-empty string, got ${describeValue(host)}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalid(`StoreServer.start: port must be an integer in 0..65535 (0 picks a free port), got ${valueText(port)}`);
  }
  if (typeof token !== 'string' || token === '') {
    // The token's value is never put in a message; only whether it is there.
    throw invalid('StoreServer.start: token must be a non-empty string');
  }
  if (
    maxFrameBytes !== undefined &&
    (!Number.isInteger(maxFrameBytes) || maxFrameBytes < MIN_MAX_FRAME_BYTES || maxFrameBytes > MAX_MAX_FRAME_BYTES)
  ) {
    throw invalid(
      `StoreServer.start: maxFrameBytes must be an integer in ${MIN_MAX_FRAME_BYTES}..${MAX_MAX_FRAME_BYTES}, got ${valueText(maxFrameBytes)}`,
    );
  }
  if (authTimeoutMs !== undefined && (!Number.isFinite(authTimeoutMs) || authTimeoutMs <= 0 || authTimeoutMs > MAX_TIMEOUT_MS)) {
    throw invalid(`StoreServer.start: authTimeoutMs must be a positive number of milliseconds, got ${valueText(authTimeoutMs)}`);
  }
  return { host, port, token };
}
