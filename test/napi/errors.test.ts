/**
 * Every error the addon raises is a MicsError (the package's one error class) with
 * a stable code and, where known, the rank/group/op/peer: bad arguments thrown at
 * the call, failures rejected from ops, and use after destroy(). Inputs whose
 * memory could move or vanish under an op (SharedArrayBuffer, detached or
 * resizable ArrayBuffers) are refused with MICS_INVALID_ARGUMENT naming the input.
 * The native Communicator is driven directly, as a caller of the addon would.
 */
import { loadAddon, type NativeCommunicator } from '../../lib/core/native';
import { MicsError } from '../../lib/core/errors';
import { runNode } from '../helpers/run-node';

const { addon, file } = loadAddon();
type Comm = NativeCommunicator;

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Two ranks of one group, both in this process (shared memory between threads). */
async function pair(name: string): Promise<[Comm, Comm]> {
  const make = (rank: number): Comm =>
    new addon.Communicator({ backend: 'cpu', rank, size: 2, node: 0, host: '127.0.0.1', name });
  const comms: [Comm, Comm] = [make(0), make(1)];
  const addresses = comms.map((c) => c.address);
  await Promise.all(comms.map((c) => c.connect(addresses, 10000)));
  return comms;
}

function solo(name: string): Comm {
  return new addon.Communicator({ backend: 'cpu', rank: 0, size: 1, node: 0, host: '127.0.0.1', name });
}

// ES2024 constructors (Node 20 has them; this TypeScript lib does not declare them).
type Resizable<T> = new (bytes: number, options: { maxByteLength: number }) => T;
const ResizableArrayBuffer = ArrayBuffer as unknown as Resizable<ArrayBuffer>;
const GrowableSharedArrayBuffer = SharedArrayBuffer as unknown as Resizable<SharedArrayBuffer>;

/** A view of an ArrayBuffer that was transferred away. */
function detachedView(): Float32Array {
  const buffer = new ArrayBuffer(64);
  const view = new Float32Array(buffer);
  structuredClone(buffer, { transfer: [buffer] });
  return view;
}

describe('bad arguments to the addon throw MicsError MICS_INVALID_ARGUMENT at the call', () => {
  const comm = solo('errors-args');
  beforeAll(() => comm.connect([comm.address], 10000));
  afterAll(() => comm.destroy());
  const x = new Float32Array(4);
  const untyped = addon as unknown as Record<string, (...args: unknown[]) => unknown>;
  const anyComm = comm as unknown as Record<string, (...args: unknown[]) => unknown>;
  const Ctor = addon.Communicator as unknown as new (...args: unknown[]) => unknown;

  it.each<[string, () => unknown, RegExp]>([
    ['Communicator() without options', () => new Ctor(), /options \{backend, rank, size/],
    ['an unknown backend', () => new Ctor({ backend: 'mpi', rank: 0, size: 1, node: 0, host: '127.0.0.1', name: 'x' }), /backend 'mpi' is not valid/],
    ['allocHost(-1)', () => addon.allocHost(-1), /byteLength -1 is not valid/],
    ['allocHost("8")', () => untyped.allocHost('8'), /byteLength \(not a number\) is not valid/],
    ['setErrorClass(42)', () => untyped.setErrorClass(42), /cls must be the MicsError class/],
    ['collective with too few arguments', () => anyComm.collective('allReduce', x, x), /7 arguments/],
    ['collective with a numeric kind', () => anyComm.collective(1, x, x, 'f32', 'sum', 0, 1000), /an op is \(kind: string/],
    ['collective of an unknown kind', () => comm.collective('gather' as never, x, x, 'f32', 'sum', 0, 1000), /collective 'gather' is not valid/],
    ['collective over a string', () => comm.collective('allReduce', 'abc' as never, x, 'f32', 'sum', 0, 1000), /input buffer must be a TypedArray/],
    ['collective with an unknown dtype', () => comm.collective('allReduce', x, x, 'f128', 'sum', 0, 1000), /f128/],
    ['connect with a non-string address', () => anyComm.connect([1], 1000), /addresses\[0\] is not a string/],
    ['group with a non-array op', () => anyComm.group([1], 1000), /ops\[0\] is not \[kind/],
  ])('%s', (_name, fn, message) => {
    const error = caught(fn);
    expect(error).toBeInstanceOf(MicsError);
    expect(error).toMatchObject({ name: 'MicsError', code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(message) });
  });

  it.each<[string, () => ArrayBufferView, RegExp]>([
    ['a SharedArrayBuffer', () => new Float32Array(new SharedArrayBuffer(64)), /input buffer is backed by a SharedArrayBuffer/],
    ['a growable SharedArrayBuffer', () => new Float32Array(new GrowableSharedArrayBuffer(64, { maxByteLength: 128 })), /SharedArrayBuffer/],
    ['a detached ArrayBuffer', detachedView, /input buffer is a view of a detached ArrayBuffer/],
    ['a resizable ArrayBuffer', () => new Float32Array(new ResizableArrayBuffer(64, { maxByteLength: 128 })), /input buffer is a view of a resizable ArrayBuffer/],
    [
      'a resizable ArrayBuffer whose own `resizable` property says false',
      () => {
        const buffer = new ResizableArrayBuffer(64, { maxByteLength: 128 });
        Object.defineProperty(buffer, 'resizable', { value: false });
        return new Float32Array(buffer);
      },
      /input buffer is a view of a resizable ArrayBuffer/,
    ],
  ])('refuses an input over %s, naming it', (_name, make, message) => {
    const input = make();
    const error = caught(() => comm.collective('allReduce', input, new Float32Array(16), 'f32', 'sum', 0, 1000));
    expect(error).toBeInstanceOf(MicsError);
    expect(error).toMatchObject({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(message) });
    // As an output too, and in a grouped call.
    const asOutput = caught(() => comm.collective('allReduce', new Float32Array(16), input, 'f32', 'sum', 0, 1000));
    expect(asOutput).toMatchObject({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(/output buffer/) });
    const grouped = caught(() => comm.group([['allReduce', input, input, 'f32', 'sum', 0]], 1000));
    expect(grouped).toBeInstanceOf(MicsError);
  });
});

describe('buffers checked once', () => {
  it('a fixed-length buffer used for many ops stays accepted, and a resizable one made later is still refused', async () => {
    const [a, b] = await pair('errors-fixed-once');
    try {
      const x = new Float32Array(4);
      const y = new Float32Array(4);
      for (let i = 0; i < 3; i++) {
        x.fill(i + 1);
        y.fill(10 * (i + 1));
        await Promise.all([a.collective('allReduce', x, x, 'f32', 'sum', 0, 5000), b.collective('allReduce', y, y, 'f32', 'sum', 0, 5000)]);
        expect([x[0], y[3]]).toEqual([11 * (i + 1), 11 * (i + 1)]);
      }
      const resizable = new Float32Array(new ResizableArrayBuffer(16, { maxByteLength: 32 }));
      expect(caught(() => a.collective('allReduce', resizable, resizable, 'f32', 'sum', 0, 1000))).toMatchObject({
        code: 'MICS_INVALID_ARGUMENT',
        message: expect.stringMatching(/resizable ArrayBuffer/),
      });
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});

describe('failures of ops reject with MicsError naming rank, group, op and peer', () => {
  it('MICS_TIMEOUT when the peer never calls', async () => {
    const [a, b] = await pair('errors-timeout');
    try {
      const error = await a.collective('allReduce', new Float32Array(8), new Float32Array(8), 'f32', 'sum', 0, 100).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MicsError);
      expect(error).toMatchObject({ code: 'MICS_TIMEOUT', rank: 0, group: 'errors-timeout', peer: 1, op: expect.stringMatching(/^allReduce\(count=8/) });
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('MICS_MISMATCH when the ranks call different collectives', async () => {
    const [a, b] = await pair('errors-mismatch');
    try {
      const results = await Promise.all([
        a.collective('allReduce', new Float32Array(8), new Float32Array(8), 'f32', 'sum', 0, 10000).catch((e: unknown) => e),
        b.collective('allReduce', new Float32Array(9), new Float32Array(9), 'f32', 'sum', 0, 10000).catch((e: unknown) => e),
      ]);
      for (const error of results) {
        expect(error).toBeInstanceOf(MicsError);
        expect(error).toMatchObject({ code: 'MICS_MISMATCH', group: 'errors-mismatch' });
      }
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('MICS_ABORTED for ops in flight at destroy() and for every call after it', async () => {
    const [a, b] = await pair('errors-destroyed');
    const inFlight = a.collective('allReduce', new Float32Array(8), new Float32Array(8), 'f32', 'sum', 0, 60000).catch((e: unknown) => e);
    a.destroy();
    const error = await inFlight;
    expect(error).toBeInstanceOf(MicsError);
    expect(error).toMatchObject({ code: 'MICS_ABORTED', rank: 0, group: 'errors-destroyed' });
    const later = caught(() => a.collective('barrier', null, null, 'u8', 'sum', 0, 1000));
    expect(later).toBeInstanceOf(MicsError);
    expect(later).toMatchObject({ code: 'MICS_ABORTED', rank: 0, group: 'errors-destroyed', op: 'collective', message: expect.stringMatching(/was destroyed/) });
    expect(a.pending).toBe(0);
    // The peer, calling the same op late, learns it too (rank 0 told it while shutting down).
    const peer = await b.collective('allReduce', new Float32Array(8), new Float32Array(8), 'f32', 'sum', 0, 10000).catch((e: unknown) => e);
    expect(peer).toBeInstanceOf(MicsError);
    expect((peer as MicsError).code).toMatch(/MICS_ABORTED|MICS_PEER_LOST/);
    b.destroy();
  });
});

describe('without the loader', () => {
  it('a program that requires the .node itself gets plain Errors with the same code and fields', () => {
    const script = `
      const addon = require(${JSON.stringify(file)});
      try { addon.allocHost(-1); } catch (e) {
        console.log(JSON.stringify({ isError: e instanceof Error, name: e.name, code: e.code, message: e.message }));
      }`;
    const result = runNode(['-e', script]);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({
      isError: true,
      name: 'Error',
      code: 'MICS_INVALID_ARGUMENT',
      message: expect.stringMatching(/byteLength -1 is not valid/),
    });
  });
});
