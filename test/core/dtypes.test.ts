/**
 * resolveTensor: what a host tensor argument means to the collectives. Plain
 * TypedArrays of the supported classes take a one-lookup path; everything else
 * (subclasses such as Buffer, {data, dtype} views, unusual backing memory) the
 * full checks. Both must agree.
 */
import { resolveTensor } from '../../lib/core/dtypes';
import { MicsError } from '../../lib/core/errors';

// Node 20's types predate resizable ArrayBuffers; the runtime has them.
const Resizable = ArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => ArrayBuffer;

describe('resolveTensor', () => {
  it.each([
    [Float32Array, 'f32'],
    [Float64Array, 'f64'],
    [Int8Array, 'i8'],
    [Uint8Array, 'u8'],
    [Int32Array, 'i32'],
    [BigInt64Array, 'i64'],
  ] as const)('a plain %p is its natural dtype and is passed as is', (Type, dtype) => {
    const array = new Type(3);
    const resolved = resolveTensor(array, 'input');
    expect(resolved.dtype).toBe(dtype);
    expect(resolved.array).toBe(array);
  });

  it('a subclass resolves as its base class (a Buffer is u8)', () => {
    class Scaled extends Float32Array {}
    expect(resolveTensor(Buffer.alloc(4), 'input').dtype).toBe('u8');
    expect(resolveTensor(new Scaled(2), 'input').dtype).toBe('f32');
  });

  it('a Uint16Array needs a dtype; a view takes its range', () => {
    expect(() => resolveTensor(new Uint16Array(2), 'input')).toThrow(/needs an explicit dtype/);
    const data = new Uint16Array(8);
    const resolved = resolveTensor({ data, dtype: 'bf16', offset: 2, length: 4 }, 'input');
    expect(resolved.dtype).toBe('bf16');
    expect(resolved.array.byteOffset).toBe(4);
    expect(resolved.array.length).toBe(4);
  });

  it.each([
    ['a SharedArrayBuffer', () => new Float32Array(new SharedArrayBuffer(16)), /SharedArrayBuffer/],
    ['a resizable ArrayBuffer', () => new Float32Array(new Resizable(16, { maxByteLength: 64 })), /resizable/],
    [
      'a detached ArrayBuffer',
      () => {
        const array = new Float32Array(4);
        structuredClone(array.buffer, { transfer: [array.buffer] });
        return array;
      },
      /detached/,
    ],
  ])('a plain Float32Array over %s is refused', (_what, make, message) => {
    let thrown: unknown;
    try {
      resolveTensor(make(), 'input');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(MicsError);
    expect((thrown as MicsError).code).toBe('MICS_INVALID_ARGUMENT');
    expect((thrown as MicsError).message).toMatch(message);
  });

  it('an empty plain array over an attached buffer is fine', () => {
    expect(resolveTensor(new Float32Array(0), 'input').array.length).toBe(0);
  });
});
