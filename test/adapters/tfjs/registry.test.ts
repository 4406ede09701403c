/**
 * The engine's registry from a tfjs model: one parameter per trainable variable,
 * named by the variable, units by layer (or variable, size, a function), and a clear
 * error for everything the adapter cannot train.
 */
import { buildRegistry } from '../../../lib/adapters/tfjs/registry';
import { tf } from '../../../lib/adapters/tfjs';
import { thrown } from '../../helpers/errors';

/** A 3-4-2 perceptron with layers `${prefix}hidden` and `${prefix}out` (tfjs names must be unique in a process). */
function mlp(prefix: string): import('@tensorflow/tfjs').Sequential {
  return tf.sequential({
    layers: [tf.layers.dense({ inputShape: [3], units: 4, name: `${prefix}hidden` }), tf.layers.dense({ units: 2, useBias: false, name: `${prefix}out` })],
  });
}

describe('a LayersModel', () => {
  it('gives one parameter per trainable variable, named by the variable, one unit per layer, in forward order', () => {
    const { entries, parameters } = buildRegistry(mlp(''), undefined);
    expect(parameters).toEqual([
      { name: 'hidden/kernel', shape: [3, 4], unit: 'hidden' },
      { name: 'hidden/bias', shape: [4], unit: 'hidden' },
      { name: 'out/kernel', shape: [4, 2], unit: 'out' },
    ]);
    expect(entries.map((e) => [e.name, e.numel, e.variable instanceof tf.Variable])).toEqual([
      ['hidden/kernel', 12, true],
      ['hidden/bias', 4, true],
      ['out/kernel', 8, true],
    ]);
  });

  it("groups by variable, by size (the engine's buckets) or by a function of the name", () => {
    const model = mlp('g.');
    expect(buildRegistry(model, 'variable').parameters.map((p) => p.unit)).toEqual(['g.hidden/kernel', 'g.hidden/bias', 'g.out/kernel']);
    expect(buildRegistry(model, 'size').parameters.map((p) => p.unit)).toEqual([undefined, undefined, undefined]);
    expect(buildRegistry(model, (name) => (name.endsWith('bias') ? 'b' : 'w')).parameters.map((p) => p.unit)).toEqual(['w', 'b', 'w']);
  });

  it('leaves out non-trainable layers', () => {
    const model = mlp('f.');
    model.getLayer('f.hidden').trainable = false;
    expect(buildRegistry(model, undefined).parameters.map((p) => p.name)).toEqual(['f.out/kernel']);
  });
});

describe('a list of variables', () => {
  it("takes tf.Variables and LayerVariables; units by size unless told; 'layer' needs a model", () => {
    const a = tf.variable(tf.zeros([2, 2]), true, 'registry-a');
    const model = mlp('l.');
    const { parameters } = buildRegistry([a, ...model.getLayer('l.out').trainableWeights], undefined);
    expect(parameters).toEqual([
      { name: 'registry-a', shape: [2, 2] },
      { name: 'l.out/kernel', shape: [4, 2] },
    ]);
    expect(thrown(() => buildRegistry([a], 'layer')).message).toMatch(/unitOf 'layer' needs a tf.LayersModel/);
  });

  it('rejects what it cannot train, naming it', () => {
    const ints = tf.variable(tf.zeros([2], 'int32'), true, 'registry-ints');
    const frozen = tf.variable(tf.zeros([2]), false, 'registry-frozen');
    const v = tf.variable(tf.zeros([2]), true, 'registry-v');
    const cases: [unknown, unknown, RegExp][] = [
      [[ints], undefined, /variable 'registry-ints' has dtype int32: the adapter trains float32 variables only/],
      [[frozen], undefined, /variable 'registry-frozen' is not trainable/],
      [[tf.zeros([2])], undefined, /variables\[0\] is not a tf.Variable/],
      [[{}], undefined, /variables\[0\] is not a tf.Variable/],
      [[], undefined, /the model has no trainable variables/],
      [{ predict: 1 }, undefined, /model must be a tf.LayersModel or an array of tf.Variables/],
      [null, undefined, /model must be a tf.LayersModel or an array of tf.Variables/],
      [[v], 'units', /unitOf 'units' is not valid: use 'layer', 'variable', 'size' or a function/],
      [[v], () => '', /unitOf\('registry-v'\) returned "": return a unit name/],
    ];
    for (const [model, grouping, message] of cases) {
      const err = thrown(() => buildRegistry(model as never, grouping as never));
      expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(message)]);
    }
  });

  it('counts a variable listed twice once', () => {
    const v = tf.variable(tf.zeros([3]), true, 'registry-twice');
    expect(buildRegistry([v, v], undefined).parameters).toEqual([{ name: 'registry-twice', shape: [3] }]);
  });
});
