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
});
