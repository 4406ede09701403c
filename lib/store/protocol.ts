/**
 * The store's wire format, shared by server and client.
 *
 * Every message is a frame: a 4-byte big-endian body length, then the body. A body
 * starts with a one-byte op code and a 4-byte request id; the rest depends on the op.
 * Variable-length fields (keys, values, messages) are a 4-byte length and the bytes.
 * Full layout: docs/store.md.
 *
 * Lengths are checked against a limit BEFORE any body is buffered, so a peer cannot
 * make the other side allocate more than the limit; and the limit before
 * authentication is tiny, so an unauthenticated peer cannot make the server buffer
 * more than a handshake.
 */
import * as crypto from 'node:crypto';

import { MicsError } from '../core/errors';

/** The stable `code` of every error the store raises. */
export type StoreErrorCode = 'MICS_TIMEOUT' | 'MICS_STORE_AUTH' | 'MICS_STORE_CLOSED' | 'MICS_INVALID_ARGUMENT' | 'MICS_PEER_LOST';

/**
 * An error from the store: a MicsError whose message names the key and the store's host:port
 * (and, for MICS_PEER_LOST, `peer`: the registered rank whose connection was lost).
 */
export function storeError(code: StoreErrorCode, message: string, options?: { cause?: unknown; peer?: number }): MicsError {
  return new MicsError(message, code, { cause: options?.cause, peer: options?.peer });
}

/**
 * A frame that breaks the protocol. Never shown to users as such: the side that sees
 * one closes that connection (the peer is either broken or hostile).
 */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Version byte in the greeting and the auth frame; bumped on incompatible changes (2: Register, PeerLost). */
export const PROTOCOL_VERSION = 2;
/** First bytes of the server's greeting, so a client that reached some other service says so. */
export const MAGIC = Buffer.from('MICSSTOR', 'ascii');
export const LENGTH_PREFIX_BYTES = 4;
export const NONCE_BYTES = 32;
export const DIGEST_BYTES = 32;
/** Default bound on one frame's body (keys + values of one request or response). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Smallest maxFrameBytes a server accepts: below this, ordinary keys would not fit. */
export const MIN_MAX_FRAME_BYTES = 1024;
/** Largest maxFrameBytes (1 GiB): far above any rendezvous value, well below Buffer limits. */
export const MAX_MAX_FRAME_BYTES = 1024 * 1024 * 1024;
/** Bound on frames before authentication (greeting, auth, auth result are ~70 bytes). */
export const HANDSHAKE_MAX_FRAME_BYTES = 256;
/** Largest timeout in ms: what setTimeout and the uint32 wire field both hold. */
export const MAX_TIMEOUT_MS = 0x7fffffff;

/** Op codes. Server to client: Hello, AuthResult, Response. The rest: client to server. */
export const Op = {
  Hello: 0x01,
  AuthResult: 0x02,
  Response: 0x03,
  Auth: 0x10,
  Set: 0x20,
  Get: 0x21,
  MultiGet: 0x22,
  MultiSet: 0x23,
  Add: 0x24,
  CompareSet: 0x25,
  Wait: 0x26,
  Check: 0x27,
  Delete: 0x28,
  NumKeys: 0x29,
  /** This connection stands for a member (rank) of the group whose keys live under a scope. */
  Register: 0x2a,
  /** This connection no longer stands for its member of a scope (the group has formed). */
  Unregister: 0x2b,
  /** Drop the waiter of request `id` (the client gave up on it); no reply. */
  Cancel: 0x2f,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** Status byte of a Response (and of AuthResult: Ok or Auth). */
export const Status = {
  Ok: 0,
  Timeout: 1,
  InvalidArgument: 2,
  Closed: 3,
  Auth: 4,
  /** A registered member's connection was lost while its group was forming; the message is followed by `u32 member`. */
  PeerLost: 5,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

/** The error code a non-Ok status turns into on the client. */
export function statusToCode(status: number): StoreErrorCode {
  switch (status) {
    case Status.Timeout:
      return 'MICS_TIMEOUT';
    case Status.InvalidArgument:
      return 'MICS_INVALID_ARGUMENT';
    case Status.Auth:
      return 'MICS_STORE_AUTH';
    case Status.PeerLost:
      return 'MICS_PEER_LOST';
    default:
      return 'MICS_STORE_CLOSED';
  }
}

/** Builds one frame body field by field; `toFrame()` prepends the length. */
export class BodyWriter {
  private readonly parts: Buffer[] = [];
  private size = 0;

  get byteLength(): number {
    return this.size;
  }

  u8(value: number): this {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(value);
    return this.push(b);
  }

  u32(value: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(value);
    return this.push(b);
  }

  f64(value: number): this {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(value);
    return this.push(b);
  }

  /** Fixed-size bytes, no length (nonces, digests, magic). */
  raw(bytes: Uint8Array): this {
    return this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  /** Length-prefixed bytes. */
  bytes(bytes: Uint8Array): this {
    this.u32(bytes.byteLength);
    return this.raw(bytes);
  }

  string(text: string): this {
    return this.bytes(Buffer.from(text, 'utf8'));
  }

  /** Length prefix + body in one buffer; copies, so callers may reuse their inputs at once. */
  toFrame(): Buffer {
    const header = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
    header.writeUInt32BE(this.size);
    return Buffer.concat([header, ...this.parts], LENGTH_PREFIX_BYTES + this.size);
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }
}

/** Reads one frame body; every read is bounds-checked and throws ProtocolError when short. */
export class BodyReader {
  private offset = 0;

  constructor(private readonly body: Buffer) {}

  u8(): number {
    this.need(1);
    const v = this.body.readUInt8(this.offset);
    this.offset += 1;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.body.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.body.readDoubleBE(this.offset);
    this.offset += 8;
    return v;
  }

  /**
   * Fixed-size bytes. Copied: a body can be a slice of a larger socket chunk, and a
   * stored value must not pin that chunk in memory.
   */
  raw(length: number): Buffer {
    this.need(length);
    const out = Buffer.from(this.body.subarray(this.offset, this.offset + length));
    this.offset += length;
    return out;
  }

  bytes(): Buffer {
    return this.raw(this.u32());
  }

  string(): string {
    const length = this.u32();
    this.need(length);
    const text = this.body.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return text;
  }

  /**
   * An element count. Each element takes at least `minElementBytes` on the wire, so a
   * count larger than the rest of the body allows is malformed; checking it here keeps
   * a hostile count from driving a huge allocation or loop.
   */
  count(minElementBytes: number): number {
    const n = this.u32();
    if (n * minElementBytes > this.body.length - this.offset) {
      throw new ProtocolError(`count ${n} does not fit in the ${this.body.length - this.offset} bytes left`);
    }
    return n;
  }

  /** Asserts the body was consumed exactly: trailing bytes mean the peer speaks something else. */
  end(): void {
    if (this.offset !== this.body.length) {
      throw new ProtocolError(`${this.body.length - this.offset} unexpected trailing bytes in frame`);
    }
  }

  private need(n: number): void {
    if (this.offset + n > this.body.length) {
      throw new ProtocolError(`frame truncated: needs ${n} bytes at offset ${this.offset} of ${this.body.length}`);
    }
  }
}

/**
 * Splits a byte stream into frame bodies. Frames are taken one at a time (`next()`),
 * because the limit changes between frames: it grows once the connection has
 * authenticated, and a frame pipelined right behind the auth frame must be measured
 * against the limit in force when it is reached.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(public maxFrameBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete body, or undefined until more bytes arrive. Throws ProtocolError when oversized. */
  next(): Buffer | undefined {
    if (this.buffered < LENGTH_PREFIX_BYTES) return undefined;
    if (this.chunks[0].length < LENGTH_PREFIX_BYTES) this.merge();
    const length = this.chunks[0].readUInt32BE(0);
    if (length > this.maxFrameBytes) {
      throw new ProtocolError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`);
    }
    const total = LENGTH_PREFIX_BYTES + length;
    if (this.buffered < total) return undefined;
    if (this.chunks[0].length < total) this.merge();
    const first = this.chunks[0];
    const body = first.subarray(LENGTH_PREFIX_BYTES, total);
    if (first.length === total) this.chunks.shift();
    else this.chunks[0] = first.subarray(total);
    this.buffered -= total;
    return body;
  }

  /** Joins what is buffered; only called once the bytes a frame needs are all here. */
  private merge(): void {
    this.chunks = [Buffer.concat(this.chunks, this.buffered)];
  }
}

/** Random bytes for one side of the challenge. */
export function newNonce(): Buffer {
  return crypto.randomBytes(NONCE_BYTES);
}

/**
 * The proof one side sends: HMAC-SHA256 keyed by the token over a role label and both
 * nonces. The token itself never crosses the wire, a captured proof is useless for any
 * other connection (fresh nonces), and the role label keeps the server's proof from
 * being replayed as a client's.
 */
export function authProof(token: string, role: 'client' | 'server', serverNonce: Buffer, clientNonce: Buffer): Buffer {
  return crypto
    .createHmac('sha256', token)
    .update(`mics-store/${PROTOCOL_VERSION}/${role}\0`)
    .update(serverNonce)
    .update(clientNonce)
    .digest();
}

/** Constant-time equality of two digests; false (not a throw) when a length is off. */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  // timingSafeEqual throws on unequal lengths; both are fixed-size digests, and an
  // attacker-chosen length must not reach it.
  if (a.length !== DIGEST_BYTES || b.length !== DIGEST_BYTES) return false;
  return crypto.timingSafeEqual(a, b);
}

/** A key as it appears in messages: quoted, escaped, and cut short when long. */
export function quoteKey(key: string): string {
  const quoted = JSON.stringify(key);
  return quoted.length > 200 ? `${quoted.slice(0, 197)}..."` : quoted;
}
