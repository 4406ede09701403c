/**
 * describeValue: how an error message shows a value the caller passed. It never
 * throws and never walks a large value, whatever it is given.
 */
import { describeValue } from '../../lib/core/errors';

describe('describeValue', () => {
  it.each<[string, unknown, string]>([
    ['a string, quoted', 'adam', '"adam"'],
    ['a number', -1, '-1'],
    ['NaN', NaN, 'NaN'],
    ['a BigInt', 2n, '2n'],
    ['a Symbol', Symbol('u'), 'Symbol(u)'],
    ['null', null, 'null'],
    ['undefined', undefined, 'undefined'],
    ['a small plain object, as JSON (BigInts inside too)', { constant: 1n, std: 2 }, '{"constant":"1n","std":2}'],
    ['a small array', [1, 'a'], '[1,"a"]'],
    ['a typed array, by class and size', new Float32Array(1 << 20), 'a Float32Array of 4194304 bytes'],
    ['a long array, by length', new Array(1000).fill(0), 'an array of 1000 elements'],
    ['a class instance, by class', new Map(), 'a Map'],
    ['an object without a prototype', Object.assign(Object.create(null) as object, { a: 1 }), '{"a":1}'],
    ['an object of many keys, as an object', Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i])), 'an object'],
    ['inside an object: a typed array by class and size', { name: 'w', data: new Float32Array(4) }, '{"name":"w","data":"a Float32Array of 16 bytes"}'],
    ['inside an array: a long array by length, a class instance by class', [new Array(100).fill(0), new Map()], '["an array of 100 elements","a Map"]'],
  ])('%s', (_name, value, shown) => {
    expect(describeValue(value)).toBe(shown);
  });

  it('a cycle, a throwing getter or a throwing toJSON still give a description', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const getter = Object.defineProperty({}, 'x', { enumerable: true, get: () => { throw new Error('no'); } });
    const toJSON = { toJSON: () => { throw new Error('no'); } };
    for (const value of [cycle, getter, toJSON]) expect(describeValue(value)).toBe('a value of type object');
    expect(describeValue('x'.repeat(500))).toBe(`"${'x'.repeat(64)}"... (500 characters)`);
  });

  it('large values nested inside small ones are not walked, and no more than a few hundred values are read', () => {
    // Walked as JSON, the first took seconds and the second built a string of megabytes.
    expect(describeValue({ data: new Float32Array(1 << 24) })).toBe('{"data":"a Float32Array of 67108864 bytes"}');
    expect(describeValue({ grads: { w: new Array(1 << 20).fill(1) } })).toBe('{"grads":{"w":"an array of 1048576 elements"}}');
    // 16 x 64 x 64 small arrays whose every element counts its reads: the text is cut
    // at 200 characters, so reading stops after a few hundred of the 65,536.
    let reads = 0;
    const counted = (): number[] => {
      const row: number[] = [];
      for (let i = 0; i < 64; i++) Object.defineProperty(row, i, { enumerable: true, get: () => ++reads });
      return row;
    };
    const cube = Array.from({ length: 16 }, () => Array.from({ length: 64 }, counted));
    const shown = describeValue(cube);
    expect(shown.endsWith('...')).toBe(true);
    expect(shown.length).toBe(203);
    expect(reads).toBeLessThanOrEqual(256);
  });
});
