/**
 * Model presets and the arithmetic the planner needs from a model: parameters per
 * unit, FLOPs per token, activation bytes. Transformer shapes only (GPT-, BERT- and
 * Llama-style); a raw parameter count gets a GPT-3-proportioned shape.
 *
 * FLOPs follow Narayanan et al. 2021 (Megatron-LM, arXiv 2104.04473), appendix:
 * a layer's forward pass costs 24 b s h^2 (its matrix multiplies) + 4 b s^2 h
 * (attention scores and their weighted sum), the output projection 2 b s h V;
 * backward costs twice forward, recomputation one more forward. Activation
 * memory follows Korthikanti et al. 2022 (arXiv 2205.05198), eq. 1:
 * s b h (34 + 5 a s / h) bytes per layer in half precision; a fused attention
 * kernel (FlashAttention, Dao et al. 2022, arXiv 2205.14135) keeps none of the
 * s x s matrices the 5 a s / h term counts, which leaves 34 s b h.
 *
 * @packageDocumentation
 */
import { describeValue as show, invalidArgument, valueText } from '../core/errors';
import { PLAN_LIMITS } from './limits';

/** PLAN_LIMITS.parameters as messages write it: "1e15". */
const MAX_PARAMETERS = PLAN_LIMITS.parameters.toExponential().replace('+', '');

/** Which transformer the shape describes. */
export type ModelFamily = 'gpt' | 'bert' | 'llama';

/** A transformer by its shape. Parameter counts and FLOPs are derived from it. */
export interface ModelSpec {
  readonly name: string;
  readonly family: ModelFamily;
  readonly layers: number;
  readonly hidden: number;
  readonly heads: number;
  /** Key/value heads (grouped-query attention); `heads` when absent. */
  readonly kvHeads?: number;
  /** MLP inner size; 4 x hidden when absent. */
  readonly ffn?: number;
  readonly vocab: number;
  /** Default sequence length. */
  readonly sequence: number;
  /** Where the shape comes from, or why it is assumed. */
  readonly source: string;
}

/** Parameters of one transformer layer (weights and biases, norms included). */
export function layerParameters(m: ModelSpec): number {
  const h = m.hidden;
  const ffn = m.ffn ?? 4 * h;
  if (m.family === 'llama') {
    const kvDim = (h / m.heads) * (m.kvHeads ?? m.heads);
    // q and o are h x h, k and v are h x kvDim, SwiGLU has three h x ffn matrices, two RMSNorms.
    return 2 * h * h + 2 * h * kvDim + 3 * h * ffn + 2 * h;
  }
  // qkv (3h^2 + 3h), attention output (h^2 + h), MLP (2 h ffn + ffn + h), two LayerNorms (4h).
  return 4 * h * h + 2 * h * ffn + ffn + 9 * h;
}

/** Parameters outside the layers: embeddings (and an untied output matrix for Llama), final norm. */
export function embeddingParameters(m: ModelSpec): number {
  const h = m.hidden;
  if (m.family === 'llama') return 2 * m.vocab * h + h;
  // Token + learned position embeddings, final LayerNorm; the output projection is tied.
  return m.vocab * h + m.sequence * h + 2 * h;
}

/** All parameters of the model. */
export function parameterCount(m: ModelSpec): number {
  return m.layers * layerParameters(m) + embeddingParameters(m);
}

/** Forward FLOPs of one layer for `batch` sequences of `seq` tokens. */
export function layerForwardFlops(m: ModelSpec, batch: number, seq: number): number {
  const tokens = batch * seq;
  // Every weight multiplies every token once (2 FLOPs per multiply-add); attention adds 4 b s^2 h.
  const weights = layerParameters(m) - (m.family === 'llama' ? 2 * m.hidden : 9 * m.hidden + (m.ffn ?? 4 * m.hidden));
  return 2 * tokens * weights + 4 * batch * seq * seq * m.hidden;
}

/** Forward FLOPs of the output projection (logits) for `batch` sequences of `seq` tokens. */
export function logitsForwardFlops(m: ModelSpec, batch: number, seq: number): number {
  return 2 * batch * seq * m.hidden * m.vocab;
}

/**
 * FLOPs one training micro-step executes per GPU: forward, backward (2x forward)
 * and, with recomputation, the layers' forward again. Equals Megatron-LM's
 * 96 B s l h^2 (1 + s/6h + V/16lh) for a GPT with recomputation.
 */
export function trainingFlops(m: ModelSpec, batch: number, seq: number, recompute: boolean): number {
  const layers = m.layers * layerForwardFlops(m, batch, seq);
  return (recompute ? 4 : 3) * layers + 3 * logitsForwardFlops(m, batch, seq);
}

/**
 * How attention is computed: `unfused` keeps the scores, softmax and dropout mask
 * (s x s per sequence and head) for backward; `flash` (FlashAttention, or
 * PyTorch's fused scaled-dot-product attention) keeps none of them.
 */
export type AttentionKernel = 'unfused' | 'flash';
export const ATTENTION_KERNELS: readonly AttentionKernel[] = ['unfused', 'flash'];

/** Activation bytes of one layer kept for backward without recomputation (Korthikanti et al. eq. 1). */
export function layerActivationBytes(m: ModelSpec, batch: number, seq: number, attention: AttentionKernel = 'unfused'): number {
  const scores = attention === 'flash' ? 0 : (5 * m.heads * seq) / m.hidden;
  return seq * batch * m.hidden * (34 + scores);
}

/**
 * Activation memory of a micro-step per GPU. With recomputation every layer keeps
 * its half-precision input and one layer at a time holds its full activations;
 * without, every layer keeps them all. The logits add 6 bytes per token and
 * vocabulary entry (half-precision logits and the fp32 copy the loss works on).
 */
export function activationBytes(m: ModelSpec, batch: number, seq: number, recompute: boolean, attention: AttentionKernel = 'unfused'): number {
  const perLayer = layerActivationBytes(m, batch, seq, attention);
  const kept = recompute ? m.layers * 2 * seq * batch * m.hidden + perLayer : m.layers * perLayer;
  return kept + 6 * seq * batch * m.vocab;
}

function gpt(name: string, layers: number, hidden: number, heads: number, vocab: number, sequence: number, source: string): ModelSpec {
  return Object.freeze({ name, family: 'gpt' as const, layers, hidden, heads, vocab, sequence, source });
}

function bert(name: string, layers: number, hidden: number, heads: number, source: string, vocab = 30522): ModelSpec {
  return Object.freeze({ name, family: 'bert' as const, layers, hidden, heads, vocab, sequence: 512, source });
}

const MICS_BERT_SOURCE =
  'MiCS paper (arXiv 2205.00119) BERT models; shape assumed: 12 L h^2 matches the size, BERT vocabulary, sequence 512';
// The first MiCS author's DeepSpeed BERT runs (bing_bert): hidden, layers, heads, MLP 4h, vocabulary 32003, sequence 512.
const AUTHOR_BERT_SOURCE = (file: string): string =>
  `shape of the first MiCS author's DeepSpeed BERT configuration (github.com/zarzen/DeepSpeedExamples, bing_bert/zero_opt_experiments/configs/${file}); sequence 512`;

/** The built-in models, by name. */
export const MODEL_PRESETS: Readonly<Record<string, ModelSpec>> = Object.freeze({
  'bert-10b': bert('bert-10b', 127, 2560, 40, AUTHOR_BERT_SOURCE('10B_cgFalse_mbs8_gbs8192.json'), 32003),
  'bert-15b': bert('bert-15b', 190, 2560, 40, AUTHOR_BERT_SOURCE('15B_deep_cgFalse_Adam.json'), 32003),
  'bert-20b': bert('bert-20b', 64, 5120, 40, MICS_BERT_SOURCE),
  'bert-50b': bert('bert-50b', 62, 8192, 64, MICS_BERT_SOURCE),
  'gpt2-30b': gpt(
    'gpt2-30b', 48, 7168, 64, 50264, 2048,
    'aws/amazon-sagemaker-examples, smp-train-gpt-sharded-data-parallel.ipynb: gpt2-30b = 48 layers, width 7168, 64 heads, context 2048',
  ),
  'gpt-100b': gpt(
    'gpt-100b', 80, 10240, 80, 50257, 2048,
    'assumption: the MiCS paper 100B model is proprietary; a GPT shape with 12 L h^2 = 100B, sequence 2048',
  ),
  'gpt3-175b': gpt('gpt3-175b', 96, 12288, 96, 50257, 2048, 'GPT-3 paper (arXiv 2005.14165), Table 2.1: 96 layers, d_model 12288, 96 heads, context 2048'),
  'llama-7b': Object.freeze({
    name: 'llama-7b', family: 'llama' as const, layers: 32, hidden: 4096, heads: 32, ffn: 11008, vocab: 32000, sequence: 4096,
    source: 'Llama 2 paper (arXiv 2307.09288) and its released configuration: 32 layers, 4096 wide, 32 heads, MLP 11008',
  }),
  'llama-70b': Object.freeze({
    name: 'llama-70b', family: 'llama' as const, layers: 80, hidden: 8192, heads: 64, kvHeads: 8, ffn: 28672, vocab: 32000, sequence: 4096,
    source: 'Llama 2 paper (arXiv 2307.09288) and its released configuration: 80 layers, 8192 wide, 64 heads, 8 KV heads, MLP 28672',
  }),
});

/** Short names for the paper's models. */
const MODEL_ALIASES: Readonly<Record<string, string>> = {
  '100b': 'gpt-100b',
  '175b': 'gpt3-175b',
  'gpt-175b': 'gpt3-175b',
  '30b': 'gpt2-30b',
  '7b': 'llama-7b',
  '70b': 'llama-70b',
};

const SCALE: Readonly<Record<string, number>> = { '': 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9, t: 1e12 };

/**
 * A GPT shape for a bare parameter count, proportioned like GPT-3's models
 * (hidden = 128 x layers, hidden a multiple of 128).
 */
export function modelFromParameterCount(parameters: number, sequence = 2048): ModelSpec {
  if (typeof parameters !== 'number' || !Number.isFinite(parameters) || parameters < 1e6 || parameters > PLAN_LIMITS.parameters) {
    throw invalidArgument(
      `a model needs at least 1e6 and at most ${MAX_PARAMETERS} parameters to be planned, got ${show(parameters)}`,
    );
  }
  checkInteger('sequence', sequence, PLAN_LIMITS.sequence);
  const vocab = 50257;
  const hidden = Math.max(128, Math.round(Math.cbrt((128 * parameters) / 12) / 128) * 128);
  // The embeddings take their share first; small models are mostly embeddings.
  let layers = Math.max(1, Math.round((parameters - (vocab + sequence) * hidden) / (12 * hidden * hidden)));
  // Rounding up must not take a count within the limit over it.
  const perLayer = 12 * hidden * hidden + 13 * hidden;
  if (layers > 1 && layers * perLayer + (vocab + sequence + 2) * hidden > PLAN_LIMITS.parameters) layers -= 1;
  return Object.freeze({
    name: `${formatCount(parameters)} (raw)`,
    family: 'gpt' as const,
    layers,
    hidden,
    heads: hidden / 128,
    vocab,
    sequence,
    source: `shape estimated from ${formatCount(parameters)} parameters: GPT-3 proportions (hidden = 128 x layers)`,
  });
}

/**
 * The model called `name`: a preset, an alias ("100b", "175b", "30b", "7b", "70b")
 * or a bare parameter count ("13b", "1.3e9", "6700000000"). A MicsError names
 * the valid presets otherwise.
 */
export function modelPreset(name: string): ModelSpec {
  if (typeof name !== 'string') {
    throw invalidArgument(
      `modelPreset: name ${show(name)} is not valid: use a string, one of ${Object.keys(MODEL_PRESETS).join(', ')} or a parameter count such as 13b`,
    );
  }
  const key = name.trim().toLowerCase();
  const preset = MODEL_PRESETS[MODEL_ALIASES[key] ?? key];
  if (preset) return preset;
  const match = /^(\d+(?:\.\d+)?(?:e\d+)?)([kmbgt]?)$/.exec(key);
  if (match) {
    const parameters = Number(match[1]) * SCALE[match[2]];
    if (!(parameters >= 1e6 && parameters <= PLAN_LIMITS.parameters)) {
      throw invalidArgument(
        `model '${name.trim().slice(0, 64)}' is ${Number(parameters.toPrecision(6))} parameters: a parameter count must be at least 1e6 and at most ` +
          `${MAX_PARAMETERS} (${formatCount(PLAN_LIMITS.parameters)}), e.g. 13b or 1.3e9`,
      );
    }
    return modelFromParameterCount(parameters);
  }
  throw invalidArgument(
    `unknown model '${name.length > 64 ? `${name.slice(0, 64)}...` : name}': use one of ${Object.keys(MODEL_PRESETS).join(', ')}, ` +
      `an alias (${Object.keys(MODEL_ALIASES).join(', ')}) or a parameter count such as 13b or 1.3e9`,
  );
}

/** A shape given on the command line (--layers, --hidden, ...). */
export function customModel(shape: {
  family?: ModelFamily;
  layers: number;
  hidden: number;
  heads: number;
  vocab?: number;
  sequence?: number;
  ffn?: number;
  kvHeads?: number;
}): ModelSpec {
  if (typeof shape !== 'object' || shape === null) {
    throw invalidArgument(`customModel: shape ${show(shape)} is not valid: use an object {layers, hidden, heads, family?, vocab?, sequence?, ffn?, kvHeads?}`);
  }
  const limits = { layers: PLAN_LIMITS.layers, hidden: PLAN_LIMITS.hidden, heads: PLAN_LIMITS.hidden } as const;
  for (const key of ['layers', 'hidden', 'heads'] as const) {
    const v = shape[key];
    if (!Number.isInteger(v) || v < 1 || v > limits[key]) {
      throw invalidArgument(`--${key} ${show(v)} is not valid: use a positive integer up to ${limits[key]}`);
    }
  }
  const optional = { vocab: PLAN_LIMITS.vocab, sequence: PLAN_LIMITS.sequence, ffn: PLAN_LIMITS.ffn, kvHeads: PLAN_LIMITS.hidden } as const;
  for (const key of ['vocab', 'sequence', 'ffn', 'kvHeads'] as const) {
    const v = shape[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > optional[key])) {
      throw invalidArgument(`${key === 'sequence' ? '--seq' : key === 'kvHeads' ? 'kvHeads' : `--${key}`} ${show(v)} is not valid: use a positive integer up to ${optional[key]}`);
    }
  }
  if (shape.hidden % shape.heads !== 0) {
    throw invalidArgument(`--hidden ${shape.hidden} is not a multiple of --heads ${shape.heads}`);
  }
  const family = shape.family ?? 'gpt';
  if (!['gpt', 'bert', 'llama'].includes(family)) {
    throw invalidArgument(`--family ${valueText(family)} is not valid: use gpt, bert or llama`);
  }
  const m: ModelSpec = {
    name: `custom ${family} ${shape.layers}x${shape.hidden}`,
    family,
    layers: shape.layers,
    hidden: shape.hidden,
    heads: shape.heads,
    vocab: shape.vocab ?? (family === 'bert' ? 30522 : family === 'llama' ? 32000 : 50257),
    sequence: shape.sequence ?? (family === 'bert' ? 512 : 2048),
    source: 'given on the command line',
    ...(shape.ffn !== undefined ? { ffn: shape.ffn } : {}),
    ...(shape.kvHeads !== undefined ? { kvHeads: shape.kvHeads } : {}),
  };
  checkModel(m);
  return Object.freeze(m);
}

function checkInteger(what: string, v: unknown, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw invalidArgument(`${what} ${show(v)} is not valid: use a positive integer up to ${max}`);
  }
}

/**
 * Checks a model shape for the planner: a family it knows, positive integer sizes
 * within {@link PLAN_LIMITS} (layers, hidden, heads, kvHeads, ffn, vocab, sequence)
 * and at most `PLAN_LIMITS.parameters` parameters in all.
 * @throws a MicsError (MICS_INVALID_ARGUMENT) naming the field, its value and what is valid.
 */
export function checkModel(m: ModelSpec, where = 'model'): void {
  if (typeof m !== 'object' || m === null) {
    throw invalidArgument(`${where} ${show(m)} is not valid: use a ModelSpec such as modelPreset('100b') or customModel({...})`);
  }
  if (!['gpt', 'bert', 'llama'].includes(m.family)) {
    throw invalidArgument(`${where}.family ${show(m.family)} is not valid: use gpt, bert or llama`);
  }
  checkInteger(`${where}.layers`, m.layers, PLAN_LIMITS.layers);
  checkInteger(`${where}.hidden`, m.hidden, PLAN_LIMITS.hidden);
  checkInteger(`${where}.heads`, m.heads, m.hidden);
  if (m.kvHeads !== undefined) checkInteger(`${where}.kvHeads`, m.kvHeads, m.heads);
  if (m.ffn !== undefined) checkInteger(`${where}.ffn`, m.ffn, PLAN_LIMITS.ffn);
  checkInteger(`${where}.vocab`, m.vocab, PLAN_LIMITS.vocab);
  checkInteger(`${where}.sequence`, m.sequence, PLAN_LIMITS.sequence);
  const parameters = parameterCount(m);
  if (parameters > PLAN_LIMITS.parameters) {
    throw invalidArgument(
      `${where} ${typeof m.name === 'string' ? m.name.slice(0, 64) : ''} has ${formatCount(parameters)} parameters: ` +
        `the planner takes at most ${MAX_PARAMETERS} (${formatCount(PLAN_LIMITS.parameters)})`,
    );
  }
}

/** "100.7B", "6.7B", "350M". */
export function formatCount(n: number): string {
  if (n >= 1e12) return `${+(n / 1e12).toFixed(2)}T`;
  if (n >= 1e9) return `${+(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  return String(Math.round(n));
}
