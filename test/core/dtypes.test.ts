/**
 * resolveTensor: what a host tensor argument means to the collectives. Plain
 * TypedArrays of the supported classes take a one-lookup path; everything else
 * (subclasses such as Buffer, {data, dtype} views, unusual backing memory) the
 * full checks. Both must agree.
 */
import { elementBytes, fromBFloat16Bits, fromFloat16Bits, resolveTensor, toBFloat16Bits, toFloat16Bits } from '../../lib/core/dtypes';
import { thrown } from '../helpers/errors';
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
      'a resizable ArrayBuffer whose own `resizable` property says false',
      () => {
        const buffer = new Resizable(16, { maxByteLength: 64 });
        Object.defineProperty(buffer, 'resizable', { value: false });
        return new Float32Array(buffer);
      },
      /resizable ArrayBuffer \(maxByteLength 64\)/,
    ],
    [
      'a resizable ArrayBuffer whose own `resizable` getter throws',
      () => {
        const buffer = new Resizable(16, { maxByteLength: 64 });
        Object.defineProperty(buffer, 'resizable', {
          get() {
            throw new Error('from the getter');
          },
        });
        return new Float32Array(buffer);
      },
      /resizable ArrayBuffer/,
    ],
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

  it("a fixed-length buffer is accepted whatever its own properties say (ArrayBuffer.prototype's getters decide)", () => {
    const buffer = new ArrayBuffer(16);
    Object.defineProperty(buffer, 'resizable', {
      get() {
        throw new Error('from the getter');
      },
    });
    expect(resolveTensor(new Float32Array(buffer), 'input').array.length).toBe(4);
  });

  it('an empty plain array over an attached buffer is fine', () => {
    expect(resolveTensor(new Float32Array(0), 'input').array.length).toBe(0);
  });
});

describe('elementBytes and the half-precision conversions', () => {
  it('name a dtype or value they cannot take, instead of returning undefined or throwing a TypeError', () => {
    expect(elementBytes('bf16')).toBe(2);
    for (const dtype of ['f128', 'toString', Object.create(null), Symbol('d')]) {
      expect(thrown(() => elementBytes(dtype as never)).message).toMatch(/^elementBytes: dtype .* is not valid: use one of f32, f64, f16, bf16, i8, u8, i32, i64$/);
    }
    expect(fromBFloat16Bits(toBFloat16Bits(1.5))).toBe(1.5);
    expect(fromFloat16Bits(toFloat16Bits(-2))).toBe(-2);
    for (const convert of [toBFloat16Bits, fromBFloat16Bits, toFloat16Bits, fromFloat16Bits]) {
      for (const value of [Symbol('v'), 1n, '1', Object.create(null)]) {
        const err = thrown(() => convert(value as never));
        expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(new RegExp(`^${convert.name}: .* is not valid: use a number$`))]);
      }
    }
  });
});
