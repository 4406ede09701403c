/**
 * The one error class of the package. Everything mics raises, from TypeScript or
 * from the native addon, is a `MicsError` with a stable `code`, so programs branch
 * on `code` instead of parsing messages:
 *
 * - `MICS_INVALID_ARGUMENT`: bad input; the message names the value and what is valid
 * - `MICS_TIMEOUT`: an op or a rendezvous did not complete before its deadline
 * - `MICS_PEER_LOST`: a peer exited or disconnected (`peer` names it)
 * - `MICS_MISMATCH`: ranks called different collectives (`peer` names the deviant)
 * - `MICS_ABORTED`: the communicator was aborted, destroyed, or failed earlier
 * - `MICS_UNAVAILABLE`: a backend or library is not present on this machine
 * - `MICS_SYSTEM`: an operating-system call failed
 * - `MICS_STORE_AUTH`, `MICS_STORE_CLOSED`: the rendezvous store refused or went away
 * - `MICS_CORRUPT`: a file (checkpoint, safetensors) is truncated, malformed or fails its checksum
 * - `MICS_INTERNAL`: a bug in mics (please report it)
 */

/** The stable codes a {@link MicsError} carries. */
export type MicsErrorCode =
  | 'MICS_INVALID_ARGUMENT'
  | 'MICS_TIMEOUT'
  | 'MICS_PEER_LOST'
  | 'MICS_MISMATCH'
  | 'MICS_ABORTED'
  | 'MICS_UNAVAILABLE'
  | 'MICS_SYSTEM'
  | 'MICS_STORE_AUTH'
  | 'MICS_STORE_CLOSED'
  | 'MICS_CORRUPT'
  | 'MICS_INTERNAL';

/** Where a failure happened, as far as it is known. */
export interface MicsErrorDetails {
  /** The rank (in `group`) that raised the error. */
  rank?: number;
  /** The group's name ('world', 'partition[0]', ...). */
  group?: string;
  /** The operation ("allReduce(count=8, dtype=f32, op=sum) #3", "connect", ...). */
  op?: string;
  /** The rank of `group` the failure concerns (the one that died, timed out or deviated). */
  peer?: number;
  /** `peer` as a world rank, when `group` is a sub-group. */
  worldPeer?: number;
  cause?: unknown;
}

/**
 * An Error with a stable `code` and, where known, the rank, group, op and peer it
 * concerns.
 */
export class MicsError extends Error {
  readonly code: MicsErrorCode;
  rank?: number;
  group?: string;
  op?: string;
  peer?: number;
  worldPeer?: number;

  constructor(message: string, code: MicsErrorCode, details: MicsErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'MicsError';
    this.code = code;
    if (details.rank !== undefined) this.rank = details.rank;
    if (details.group !== undefined) this.group = details.group;
    if (details.op !== undefined) this.op = details.op;
    if (details.peer !== undefined) this.peer = details.peer;
    if (details.worldPeer !== undefined) this.worldPeer = details.worldPeer;
  }
}

/** Bad input: the message names the value and what is valid. */
export function invalidArgument(message: string): MicsError {
  return new MicsError(message, 'MICS_INVALID_ARGUMENT');
}

/** Most elements or keys an array or object may have to be shown as JSON. */
const SHOWN_ENTRIES = 64;
/** Values JSON.stringify may visit: past this many the text is longer than it keeps. */
const SHOWN_VALUES = 256;
/** Characters of JSON kept. */
const SHOWN_CHARACTERS = 200;

/** An object shown by its kind instead of as JSON (typed arrays, long arrays, many keys, class instances); undefined for the rest. */
function objectKind(value: object): string | undefined {
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of ${value.byteLength} bytes`;
  if (Array.isArray(value)) return value.length > SHOWN_ENTRIES ? `an array of ${value.length} elements` : undefined;
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return `a ${(value as { constructor?: { name?: unknown } }).constructor?.name ?? 'object'}`;
  let keys = 0;
  for (const key in value) {
    if (Object.prototype.hasOwnProperty.call(value, key) && ++keys > SHOWN_ENTRIES) return 'an object';
  }
  return undefined;
}

/**
 * A value as an error message shows it: strings quoted (cut at 64 characters,
 * saying how long they are), small plain objects and arrays as JSON (cut at 200
 * characters; inside them, too, typed arrays, long arrays and class instances by
 * their kind), class instances and typed arrays by their class, everything else as
 * String() does (BigInts and Symbols included); never throws and never walks a
 * large value, at the top or nested, whatever it is (a throwing getter, a cycle).
 */
export function describeValue(value: unknown): string {
  try {
    if (typeof value === 'bigint') return `${value}n`;
    if (typeof value === 'string' && value.length > 64) return `${JSON.stringify(value.slice(0, 64))}... (${value.length} characters)`;
    if (typeof value === 'object' && value !== null) {
      const kind = objectKind(value);
      if (kind !== undefined) return kind;
    }
    if (typeof value === 'string' || (typeof value === 'object' && value !== null)) {
      let visited = 0;
      const json = JSON.stringify(value, (key, v: unknown) => {
        // Past SHOWN_VALUES the text is already longer than what is kept: stop walking.
        if (++visited > SHOWN_VALUES) return undefined;
        if (typeof v === 'bigint') return `${v}n`;
        if (typeof v === 'symbol') return String(v);
        if (key !== '' && typeof v === 'object' && v !== null) return objectKind(v) ?? v;
        return v;
      });
      return json.length > SHOWN_CHARACTERS ? `${json.slice(0, SHOWN_CHARACTERS)}...` : json;
    }
    return String(value);
  } catch {
    return Array.isArray(value) ? 'an array' : `a value of type ${typeof value}`;
  }
}

/**
 * A value as text inside a message, as String() writes it, without throwing: an
 * object (which String() may fail to convert: no prototype, a throwing toString) is
 * shown as describeValue shows it.
 */
export function valueText(value: unknown): string {
  if ((typeof value === 'object' && value !== null) || typeof value === 'function') return describeValue(value);
  return String(value);
}

/**
 * A boolean option: left out (undefined) means `fallback`; anything but true or
 * false is MICS_INVALID_ARGUMENT naming `what` (a string such as 'false' would
 * otherwise count as true).
 */
export function booleanOption(what: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgument(`${what} ${describeValue(value)} is not valid: use true or false`);
  return value;
}

/**
 * An options argument: undefined and null mean none (`fallback`), as in Node's own
 * APIs; anything else that is not an object is refused, naming `what`.
 */
export function optionsObject<T extends object>(what: string, options: T | null | undefined, fallback: T): T {
  if (options === undefined || options === null) return fallback;
  if (typeof options !== 'object') {
    throw invalidArgument(`${what}: options ${describeValue(options)} is not valid: use an object (or leave it out)`);
  }
  return options;
}

/**
 * `err` as a MicsError: MicsErrors pass through; anything else (a Node.js system
 * error, a bug) is wrapped with `code` and kept as `cause`.
 */
export function toMicsError(err: unknown, code: MicsErrorCode = 'MICS_INTERNAL', context = ''): MicsError {
  if (err instanceof MicsError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MicsError(context ? `${context}: ${message}` : message, code, { cause: err });
}

/**
 * Runs `fn` and turns a synchronous throw into a rejected Promise, so that an
 * async API reports bad input the same way it reports failures.
 */
export function rejecting<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}
