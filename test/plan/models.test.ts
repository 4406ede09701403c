/** Model arithmetic: parameter counts of published models, FLOPs, activations. */
import {
  activationBytes,
  customModel,
  layerActivationBytes,
  modelFromParameterCount,
  modelPreset,
  parameterCount,
  trainingFlops,
} from '../../lib/plan';

describe('model presets', () => {
  it('count the parameters of released models exactly', () => {
    // Llama 2's released checkpoints: 6,738,415,616 and 68,976,648,192 parameters.
    expect(parameterCount(modelPreset('llama-7b'))).toBe(6_738_415_616);
    expect(parameterCount(modelPreset('llama-70b'))).toBe(68_976_648_192);
    // Hugging Face gpt2-xl: 48 layers, 1600 wide, context 1024, tied embeddings: 1,557,611,200.
    expect(parameterCount(customModel({ layers: 48, hidden: 1600, heads: 25, vocab: 50257, sequence: 1024 }))).toBe(1_557_611_200);
  });

  it('size the paper models as named', () => {
    expect(parameterCount(modelPreset('175b')) / 1e9).toBeCloseTo(174.6, 1);
    expect(parameterCount(modelPreset('100b')) / 1e9).toBeCloseTo(101.2, 1);
    expect(parameterCount(modelPreset('gpt2-30b')) / 1e9).toBeCloseTo(30.0, 1);
    for (const [name, size] of [['bert-10b', 10], ['bert-15b', 15], ['bert-20b', 20], ['bert-50b', 50]] as const) {
      expect(Math.abs(parameterCount(modelPreset(name)) / 1e9 - size) / size).toBeLessThan(0.02);
    }
  });

  it('give a bare parameter count a GPT-3-proportioned shape of that size', () => {
    const m = modelPreset('13b');
    expect(m.hidden % 128).toBe(0);
    expect(Math.abs(parameterCount(m) - 13e9) / 13e9).toBeLessThan(0.1);
    expect(modelPreset('1.3e9').layers).toBe(modelFromParameterCount(1.3e9).layers);
    // Small models are mostly embeddings: the layers get what is left.
    expect(Math.abs(parameterCount(modelPreset('1e8')) - 1e8) / 1e8).toBeLessThan(0.1);
  });

  it('reject unknown names and bad shapes, naming what is valid', () => {
    expect(() => modelPreset('gpt-5')).toThrow(/unknown model 'gpt-5': use one of bert-10b, .*gpt3-175b/);
    expect(() => customModel({ layers: 2, hidden: 100, heads: 3 })).toThrow(/--hidden 100 is not a multiple of --heads 3/);
    expect(() => customModel({ layers: 0, hidden: 64, heads: 1 })).toThrow(/--layers 0 is not valid/);
  });
});

describe('FLOPs and activations', () => {
  it('equal Megatron-LM\'s 96 B s l h^2 (1 + s/6h + V/16lh) with recomputation, 72 ... without', () => {
    const m = modelPreset('175b');
    const [B, s, l, h, V] = [4, 2048, m.layers, m.hidden, m.vocab];
    const megatron = 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
    expect(trainingFlops(m, B, s, true) / megatron).toBeCloseTo(1, 12);
    const noRecompute = 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
    expect(trainingFlops(m, B, s, false) / noRecompute).toBeCloseTo(1, 12);
  });

  it('keep one layer input per layer with recomputation, everything without (Korthikanti et al. eq. 1)', () => {
    const m = customModel({ layers: 10, hidden: 1024, heads: 16, vocab: 1000, sequence: 512 });
    const perLayer = 512 * 2 * 1024 * (34 + (5 * 16 * 512) / 1024);
    const logits = 6 * 512 * 2 * 1000;
    expect(activationBytes(m, 2, 512, false)).toBe(10 * perLayer + logits);
    expect(activationBytes(m, 2, 512, true)).toBe(10 * 2 * 512 * 2 * 1024 + perLayer + logits);
  });

  it('keep no s x s attention matrices with a fused attention kernel: 34 s b h per layer', () => {
    const m = customModel({ layers: 10, hidden: 1024, heads: 16, vocab: 1000, sequence: 512 });
    const fused = 512 * 2 * 1024 * 34;
    const logits = 6 * 512 * 2 * 1000;
    expect(layerActivationBytes(m, 2, 512, 'flash')).toBe(fused);
    expect(layerActivationBytes(m, 2, 512)).toBe(layerActivationBytes(m, 2, 512, 'unfused'));
    expect(activationBytes(m, 2, 512, false, 'flash')).toBe(10 * fused + logits);
    expect(activationBytes(m, 2, 512, true, 'flash')).toBe(10 * 2 * 512 * 2 * 1024 + fused + logits);
  });
});
