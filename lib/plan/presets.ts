/**
 * Cluster presets: one set of hardware parameters per machine type, every number
 * with its public source or marked as an assumption. The time model uses these
 * numbers as they are; nothing here is fitted to the figures it is validated
 * against (docs/scaling.md, "Sources").
 *
 * Units: bytes, seconds, FLOP/s. Link bandwidths are what NCCL-style ring
 * collectives achieve ("bus bandwidth"), not line rates; the line rate is kept
 * beside them for reference.
 *
 * @packageDocumentation
 */
import { describeValue, invalidArgument } from '../core/errors';
import { PLAN_LIMITS } from './limits';

const GB = 1e9;
const GiB = 1024 ** 3;
const US = 1e-6;

/** One class of link a collective can cross. */
export interface LinkClass {
  /** Short name for tables ("NVSwitch", "EFA"). */
  readonly name: string;
  /**
   * Achievable ring bandwidth in bytes/s. Intra-node links: per GPU. Inter-node
   * links: per node, all of its NICs together (the GPUs of a node share it).
   */
  readonly bandwidth: number;
  /** Nominal rate in bytes/s, for reference only (same per-GPU / per-node convention). */
  readonly lineRate: number;
  /** Latency one ring hop over this link adds to a collective, seconds. */
  readonly hopLatency: number;
  /**
   * Inter-node links only: `bandwidth` was measured with rings over this many
   * nodes. Rings over more nodes get bandwidth x (referenceNodes / nodes) ^
   * scaleExponent (shared fabric links; EFA measurements fall with node count).
   * Absent or 0: the fabric is non-blocking and the bandwidth does not depend on scale.
   */
  readonly referenceNodes?: number;
  readonly scaleExponent?: number;
}

/** Bandwidth of `link` for a ring spanning `nodes` nodes (see {@link LinkClass.scaleExponent}). */
export function linkBandwidth(link: LinkClass, nodes: number): number {
  const ref = link.referenceNodes ?? 0;
  const exp = link.scaleExponent ?? 0;
  if (exp === 0 || ref <= 0 || nodes <= ref) return link.bandwidth;
  return link.bandwidth * Math.pow(ref / nodes, exp);
}

/** One accelerator (or, for the emulated cluster, one CPU rank). */
export interface DeviceSpec {
  readonly name: string;
  /** Memory a rank can use, bytes. */
  readonly memoryBytes: number;
  /** Dense half-precision (bf16/fp16) peak, FLOP/s. */
  readonly peakFlops: number;
  /**
   * Fraction of `peakFlops` a large transformer layer sustains, counting the
   * FLOPs actually executed (recomputation included).
   */
  readonly computeEfficiency: number;
  /** Device memory bandwidth, bytes/s (optimizer and copy kernels are bound by it). */
  readonly memoryBandwidth: number;
}

/** Where a number of a preset comes from. */
export interface PresetSource {
  /** What the number is ("inter-node bandwidth"). */
  readonly what: string;
  /** The value as used, in words ("29.6 GB/s per node"). */
  readonly value: string;
  /** The public source, or "assumption: ..." with the reasoning. */
  readonly source: string;
}

/** Measurements the emulated preset was built from (see `mics simulate --calibrate`). */
export interface EmulatedDetails {
  /** When and where the figures were measured. */
  readonly measuredAt: string;
  readonly host: string;
  /** CPU cores of the host: ranks beyond this share cores, which the link figures already include. */
  readonly cores: number;
  /** Ranks per emulated node and emulated nodes the link figures were measured with. */
  readonly ranksPerNode: number;
  readonly nodes: number;
  /** Host memory copy bandwidth measured in one process, bytes/s. */
  readonly copyBandwidth: number;
  /** Raw measurements, for the record. */
  readonly measurements: readonly { readonly what: string; readonly bytes: number; readonly seconds: number }[];
}

/** A machine type: its devices, links and where every number comes from. */
export interface ClusterPreset {
  readonly name: string;
  readonly description: string;
  /** G: devices (ranks) per node. */
  readonly gpusPerNode: number;
  readonly device: DeviceSpec;
  /** Links between devices of one node (per-GPU figures). */
  readonly intra: LinkClass;
  /** Links between nodes (per-node figures). */
  readonly inter: LinkClass;
  /** Fixed start-up latency of every collective, seconds. */
  readonly collectiveLatency: number;
  /** Multiplier on a multi-node ring all-reduce's latency (NCCL's "plateau" correction). */
  readonly allReduceLatencyFactor: number;
  /** Memory per device the runtime takes before any model state (context, communication buffers), bytes. */
  readonly runtimeReserveBytes: number;
  /**
   * Rate at which one rank combines received data in a reduction, bytes/s; absent
   * when reductions are free next to the links (GPUs). CPU ranks measure it.
   */
  readonly reduceBandwidth?: number;
  readonly sources: readonly PresetSource[];
  /** Present on presets measured on this machine (`emulated`). */
  readonly emulated?: EmulatedDetails;
}

// NCCL's own latency model (src/graph/tuning.cc, NCCL 2.8-2.9, ring algorithm,
// Simple protocol, the one large collectives use): 8.4 us per collective, plus
// per hop 3.4 us over NVLink and 9.6 us over the network.
const NCCL_BASE = 8.4 * US;
const NCCL_NVLINK_HOP = 3.4 * US;
const NCCL_NET_HOP = 9.6 * US;
const NCCL_SOURCE = 'NCCL src/graph/tuning.cc (v2.8-2.9): ring/Simple baseLat 8.4 us, hwLat NVLink 3.4 us, NET 9.6 us';

const ncclLatencySources: PresetSource[] = [
  { what: 'collective start-up latency', value: '8.4 us', source: NCCL_SOURCE },
  { what: 'ring hop latency', value: 'NVLink/NVSwitch 3.4 us, network 9.6 us', source: NCCL_SOURCE },
  { what: 'multi-node all-reduce latency factor', value: '1.9', source: "NCCL src/graph/tuning.cc: 'plateau effect of ring' correction" },
];

const A100_EFFICIENCY_SOURCE =
  'Korthikanti et al. 2022 (arXiv 2205.05198), abstract: 530B GPT on 2240 A100s, 42.1% model-FLOPs utilisation ' +
  'with full recomputation, i.e. 42.1 x 4/3 = 56% of peak in executed FLOPs';
const RESERVE_SOURCE = 'assumption: CUDA context, NCCL buffers and library workspaces (about 1 GiB)';

const A100_40: DeviceSpec = {
  name: 'A100-SXM4-40GB',
  memoryBytes: 40 * GiB,
  peakFlops: 312e12,
  computeEfficiency: 0.56,
  memoryBandwidth: 1555 * GB,
};
const A100_80: DeviceSpec = { ...A100_40, name: 'A100-SXM4-80GB', memoryBytes: 80 * GiB, memoryBandwidth: 2039 * GB };
const H100_80: DeviceSpec = {
  name: 'H100-SXM5-80GB',
  memoryBytes: 80 * GiB,
  peakFlops: 989e12,
  computeEfficiency: 0.4,
  memoryBandwidth: 3350 * GB,
};
const V100_32: DeviceSpec = {
  name: 'V100-SXM2-32GB',
  memoryBytes: 32 * GiB,
  peakFlops: 125e12,
  computeEfficiency: 0.3,
  memoryBandwidth: 900 * GB,
};

const NVSWITCH_A100: LinkClass = { name: 'NVSwitch', bandwidth: 230 * GB, lineRate: 300 * GB, hopLatency: NCCL_NVLINK_HOP };
const NVSWITCH_H100: LinkClass = { name: 'NVSwitch', bandwidth: 360 * GB, lineRate: 450 * GB, hopLatency: NCCL_NVLINK_HOP };
// Ring bandwidth over EFA falls with the nodes a ring spans: 10 GB/s on 2 nodes, 6-8 GB/s
// on 8-32 (NVIDIA/nccl #235); 70% of InfiniBand on 8 machines, 60% on 16 (aws-ofi-nccl #19).
// Those are (n1/n2)^0.13-0.22 per doubling-range; 0.2 is used for every EFA preset.
const EFA_SCALE_EXPONENT = 0.2;
const EFA_SCALE_SOURCE: PresetSource = {
  what: 'inter-node bandwidth at scale',
  value: 'x (reference nodes / nodes)^0.2 beyond the reference node count',
  source:
    'NVIDIA/nccl issue #235: EFA ring all-reduce 10 GB/s on 2 nodes, 6-8 GB/s on 8-32 nodes; aws-ofi-nccl issue #19: ' +
    '70% of InfiniBand throughput on 8 machines, 60% on 16; exponents 0.13-0.22, 0.2 used',
};
const EFA_400: LinkClass = {
  name: 'EFA 4x100G',
  bandwidth: 29.6 * GB,
  lineRate: 50 * GB,
  hopLatency: NCCL_NET_HOP,
  referenceNodes: 4,
  scaleExponent: EFA_SCALE_EXPONENT,
};

const a100Sources = (memory: string, memoryBw: string): PresetSource[] => [
  { what: 'GPU', value: `8 x A100-SXM4 ${memory}`, source: 'AWS EC2 P4 instance page; NVIDIA A100 datasheet' },
  { what: 'peak dense bf16/fp16', value: '312 TFLOPS', source: 'NVIDIA A100 datasheet (Tensor Core, dense)' },
  { what: 'HBM bandwidth', value: memoryBw, source: 'NVIDIA A100 datasheet' },
  { what: 'compute efficiency', value: '0.56', source: A100_EFFICIENCY_SOURCE },
  {
    what: 'intra-node bandwidth',
    value: '230 GB/s per GPU (NVSwitch, 600 GB/s bidirectional)',
    source: 'NVIDIA/nccl issue #527: one p4d, all_reduce 1 GiB, busbw 230.8 GB/s (NCCL 2.9.9); NCCL caps A100 at 235',
  },
  { what: 'runtime reserve', value: '1 GiB', source: RESERVE_SOURCE },
];

const P4_INTER_SOURCE: PresetSource = {
  what: 'inter-node bandwidth',
  value: '29.6 GB/s per node (line rate 4 x 100 Gbit/s = 50 GB/s)',
  source: 'NVIDIA/nccl issue #527: 4 p4d nodes, all_reduce 1 GiB, busbw 29.6 GB/s (EFA, NCCL 2.9.9; 3 nodes 31.8)',
};

function preset(p: Omit<ClusterPreset, 'collectiveLatency' | 'allReduceLatencyFactor' | 'runtimeReserveBytes'>): ClusterPreset {
  return Object.freeze({
    collectiveLatency: NCCL_BASE,
    allReduceLatencyFactor: 1.9,
    runtimeReserveBytes: 1 * GiB,
    ...p,
    sources: Object.freeze([...p.sources, ...ncclLatencySources]),
  });
}

/** The built-in presets, by name. */
export const CLUSTER_PRESETS: Readonly<Record<string, ClusterPreset>> = Object.freeze({
  p3dn: preset({
    name: 'p3dn',
    description: 'AWS p3dn.24xlarge: 8 x V100 32 GB, NVLink, 100 Gbit/s EFA',
    gpusPerNode: 8,
    device: V100_32,
    intra: { name: 'NVLink', bandwidth: 130 * GB, lineRate: 150 * GB, hopLatency: NCCL_NVLINK_HOP },
    inter: {
      name: 'EFA 100G',
      bandwidth: 10 * GB,
      lineRate: 12.5 * GB,
      hopLatency: NCCL_NET_HOP,
      referenceNodes: 2,
      scaleExponent: EFA_SCALE_EXPONENT,
    },
    sources: [
      { what: 'GPU', value: '8 x V100-SXM2 32 GB, NVLink', source: 'AWS EC2 P3 instance page' },
      { what: 'peak dense fp16', value: '125 TFLOPS', source: 'NVIDIA V100 datasheet (SXM2, Tensor Core)' },
      { what: 'HBM bandwidth', value: '900 GB/s', source: 'NVIDIA V100 datasheet' },
      {
        what: 'compute efficiency',
        value: '0.30',
        source: 'Shoeybi et al. 2019 (Megatron-LM, arXiv 1909.08053), abstract: one V100 sustains 39 TFLOPS, 30% of peak',
      },
      {
        what: 'intra-node bandwidth',
        value: '130 GB/s per GPU',
        source: 'assumption: about 87% of the 150 GB/s per direction of six NVLink 2.0 links (hybrid cube mesh)',
      },
      {
        what: 'inter-node bandwidth',
        value: '10 GB/s per node on 2 nodes (line rate 100 Gbit/s = 12.5 GB/s)',
        source: 'NVIDIA/nccl issue #235 (2019): EFA all-reduce 10 GB/s on 2 nodes, 6-8 GB/s on 8-32 nodes',
      },
      EFA_SCALE_SOURCE,
      { what: 'runtime reserve', value: '1 GiB', source: RESERVE_SOURCE },
    ],
  }),
  p4d: preset({
    name: 'p4d',
    description: 'AWS p4d.24xlarge: 8 x A100 40 GB, NVSwitch, 4 x 100 Gbit/s EFA',
    gpusPerNode: 8,
    device: A100_40,
    intra: NVSWITCH_A100,
    inter: EFA_400,
    sources: [...a100Sources('40 GB', '1555 GB/s'), P4_INTER_SOURCE, EFA_SCALE_SOURCE],
  }),
  p4de: preset({
    name: 'p4de',
    description: 'AWS p4de.24xlarge: 8 x A100 80 GB, NVSwitch, 4 x 100 Gbit/s EFA',
    gpusPerNode: 8,
    device: A100_80,
    intra: NVSWITCH_A100,
    inter: EFA_400,
    sources: [
      ...a100Sources('80 GB', '2039 GB/s'),
      { ...P4_INTER_SOURCE, source: `${P4_INTER_SOURCE.source}; p4de has the same 400 Gbit/s EFA (AWS EC2 P4 instance page)` },
      EFA_SCALE_SOURCE,
    ],
  }),
  p5: preset({
    name: 'p5',
    description: 'AWS p5.48xlarge: 8 x H100 80 GB, NVSwitch, 3200 Gbit/s EFA',
    gpusPerNode: 8,
    device: H100_80,
    intra: NVSWITCH_H100,
    inter: {
      name: 'EFA 3200G',
      bandwidth: 240 * GB,
      lineRate: 400 * GB,
      hopLatency: NCCL_NET_HOP,
      referenceNodes: 4,
      scaleExponent: EFA_SCALE_EXPONENT,
    },
    sources: [
      { what: 'GPU', value: '8 x H100-SXM 80 GB, 3200 Gbit/s EFA', source: 'AWS EC2 P5 instance page' },
      { what: 'peak dense bf16', value: '989 TFLOPS', source: 'NVIDIA H100 datasheet (SXM, dense)' },
      { what: 'HBM bandwidth', value: '3350 GB/s', source: 'NVIDIA H100 datasheet (SXM)' },
      {
        what: 'compute efficiency',
        value: '0.40',
        source: 'Llama 3 paper (arXiv 2407.21783): 38-43% bf16 model-FLOPs utilisation on up to 16K H100s',
      },
      {
        what: 'intra-node bandwidth',
        value: '360 GB/s per GPU (NVSwitch, 900 GB/s bidirectional)',
        source: 'assumption: 80% of the 450 GB/s per direction',
      },
      {
        what: 'inter-node bandwidth',
        value: '240 GB/s per node (line rate 400 GB/s)',
        source: 'assumption: the 60% of line rate measured on 4 p4d nodes (29.6 of 50 GB/s), at 4 nodes',
      },
      { ...EFA_SCALE_SOURCE, source: `assumption: as measured on older EFA generations; ${EFA_SCALE_SOURCE.source}` },
      { what: 'runtime reserve', value: '1 GiB', source: RESERVE_SOURCE },
    ],
  }),
  'dgx-a100': preset({
    name: 'dgx-a100',
    description: 'NVIDIA DGX A100: 8 x A100 80 GB, NVSwitch, 8 x 200 Gbit/s HDR InfiniBand',
    gpusPerNode: 8,
    device: A100_80,
    intra: NVSWITCH_A100,
    inter: { name: 'IB 8x200G', bandwidth: 170 * GB, lineRate: 200 * GB, hopLatency: NCCL_NET_HOP },
    sources: [
      ...a100Sources('80 GB', '2039 GB/s'),
      {
        what: 'inter-node bandwidth',
        value: '170 GB/s per node (line rate 8 x 200 Gbit/s = 200 GB/s)',
        source: 'NVIDIA DGX A100 datasheet (8 single-port HDR ConnectX-6 for compute); 85% of line rate and a non-blocking fabric are assumptions',
      },
    ],
  }),
  'dgx-h100': preset({
    name: 'dgx-h100',
    description: 'NVIDIA DGX H100: 8 x H100 80 GB, NVSwitch, 8 x 400 Gbit/s NDR InfiniBand',
    gpusPerNode: 8,
    device: H100_80,
    intra: NVSWITCH_H100,
    inter: { name: 'IB 8x400G', bandwidth: 340 * GB, lineRate: 400 * GB, hopLatency: NCCL_NET_HOP },
    sources: [
      { what: 'GPU', value: '8 x H100-SXM 80 GB', source: 'NVIDIA DGX H100 datasheet' },
      { what: 'peak dense bf16', value: '989 TFLOPS', source: 'NVIDIA H100 datasheet (SXM, dense)' },
      { what: 'HBM bandwidth', value: '3350 GB/s', source: 'NVIDIA H100 datasheet (SXM)' },
      {
        what: 'compute efficiency',
        value: '0.40',
        source: 'Llama 3 paper (arXiv 2407.21783): 38-43% bf16 model-FLOPs utilisation on up to 16K H100s',
      },
      { what: 'intra-node bandwidth', value: '360 GB/s per GPU', source: 'assumption: 80% of the 450 GB/s per direction' },
      {
        what: 'inter-node bandwidth',
        value: '340 GB/s per node (line rate 8 x 400 Gbit/s = 400 GB/s)',
        source: 'NVIDIA DGX H100 datasheet (8 ConnectX-7 NDR); 85% of line rate and a non-blocking fabric are assumptions',
      },
      { what: 'runtime reserve', value: '1 GiB', source: RESERVE_SOURCE },
    ],
  }),
  emulated: defaultEmulatedPreset(),
});

/** Names accepted by {@link clusterPreset}, with the aliases people type. */
const ALIASES: Readonly<Record<string, string>> = {
  'p3dn.24xlarge': 'p3dn',
  'p4d.24xlarge': 'p4d',
  'p4de.24xlarge': 'p4de',
  'p5.48xlarge': 'p5',
  dgxa100: 'dgx-a100',
  dgxh100: 'dgx-h100',
};

/**
 * The emulated cluster of this repository's benchmarks (docs/benchmarks.md): ranks
 * on one 2-core VM, shared memory inside an emulated node, a 1 Gbit/s shaped TCP
 * link between nodes. These are the published figures of that machine;
 * `mics simulate --calibrate` measures the machine it runs on instead.
 */
export function defaultEmulatedPreset(): ClusterPreset {
  return Object.freeze({
    name: 'emulated',
    description: 'emulated cluster (docs/benchmarks.md): 2 nodes x 2 ranks on one 2-core VM, shared memory + 1 Gbit/s TCP',
    gpusPerNode: 2,
    device: {
      name: 'CPU rank',
      memoryBytes: 4 * GiB,
      peakFlops: 2 * 2.445e9 * 16,
      computeEfficiency: 0.5,
      memoryBandwidth: 10 * GB,
    },
    intra: { name: 'shm', bandwidth: 3.3 * GB, lineRate: 10 * GB, hopLatency: 45 * US },
    inter: { name: 'TCP 1G', bandwidth: 0.1196 * GB, lineRate: 0.125 * GB, hopLatency: 100 * US },
    collectiveLatency: 90 * US,
    allReduceLatencyFactor: 1,
    runtimeReserveBytes: 0.25 * GiB,
    sources: Object.freeze([
      { what: 'intra-node bandwidth', value: '3.3 GB/s', source: 'docs/benchmarks.md: shm all_gather busbw, 4 ranks, 64 MiB (median of 5)' },
      { what: 'inter-node bandwidth', value: '119.6 MB/s per node', source: 'docs/benchmarks.md: tc-shaped 1 Gbit/s link, 956.7 Mbit/s TCP goodput' },
      { what: 'collective latency', value: '90 us', source: 'docs/benchmarks.md: small-message ops take 90-100 us on one node' },
      { what: 'hop latency', value: 'shm 45 us, TCP 100 us', source: 'docs/benchmarks.md: TCP ping-pong 110-200 us round trip; shm assumption: half the small-op time' },
      { what: 'compute', value: '2 cores x 2.445 GHz x 16 FLOP/cycle x 0.5', source: 'assumption: AVX2 FMA peak, not measured; step comparisons use measured compute time' },
      { what: 'memory per rank', value: '4 GiB', source: 'assumption: 23.5 GiB host shared by up to 4 ranks, with room for the OS' },
    ]),
  });
}

/** The preset called `name` (or an alias such as "p4d.24xlarge"); a MicsError naming the valid ones otherwise. */
export function clusterPreset(name: string): ClusterPreset {
  if (typeof name !== 'string') {
    throw invalidArgument(
      `clusterPreset: name ${describeValue(name)} is not valid: ` +
        `use a string, one of ${Object.keys(CLUSTER_PRESETS).join(', ')}`,
    );
  }
  const key = ALIASES[name.toLowerCase()] ?? name.toLowerCase();
  const found = CLUSTER_PRESETS[key];
  if (!found) {
    throw invalidArgument(
      `unknown cluster '${name.length > 64 ? `${name.slice(0, 64)}...` : name}': use one of ${Object.keys(CLUSTER_PRESETS).join(', ')} or --cluster-file FILE.json`,
    );
  }
  return found;
}

type Json = unknown;

/**
 * Checks a cluster given to the planner as an object (a preset, `clusterFromJson`'s
 * result or one built by hand): every field `clusterFromJson` requires, in range.
 * @throws a MicsError (MICS_INVALID_ARGUMENT) naming the field (`cluster.device.memoryBytes`, ...).
 */
export function checkCluster(cluster: unknown, where = 'cluster'): void {
  clusterFromJson(cluster, where);
}

function field(obj: Record<string, Json>, key: string, where: string, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
  const v = obj[key];
  const min = opts.min ?? 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= min || (opts.max !== undefined && v > opts.max) || (opts.integer && !Number.isInteger(v))) {
    const range = `${opts.integer ? 'an integer' : 'a number'} > ${min}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}`;
    throw invalidArgument(`${where}.${key} must be ${range}, got ${describeValue(v)}`);
  }
  return v;
}

function object(v: Json, where: string): Record<string, Json> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidArgument(`${where} must be an object, got ${describeValue(v)}`);
  }
  return v as Record<string, Json>;
}

function link(v: Json, where: string): LinkClass {
  const o = object(v, where);
  const bandwidth = field(o, 'bandwidth', where);
  return {
    name: typeof o.name === 'string' ? o.name : where,
    bandwidth,
    lineRate: o.lineRate === undefined ? bandwidth : field(o, 'lineRate', where),
    hopLatency: field(o, 'hopLatency', where, { min: -1 }),
    ...(o.referenceNodes !== undefined ? { referenceNodes: field(o, 'referenceNodes', where) } : {}),
    ...(o.scaleExponent !== undefined ? { scaleExponent: field(o, 'scaleExponent', where, { min: -1 }) } : {}),
  };
}

/**
 * A preset from parsed JSON (`--cluster-file`). Same fields as {@link ClusterPreset};
 * `collectiveLatency`, `allReduceLatencyFactor`, `runtimeReserveBytes`, `sources`,
 * `lineRate` and names may be left out. Every number is checked; a bad one is a
 * MicsError naming the field and what is valid.
 */
export function clusterFromJson(value: Json, origin = 'cluster file'): ClusterPreset {
  const o = object(value, origin);
  const device = object(o.device, `${origin}.device`);
  const where = `${origin}.device`;
  const sources = Array.isArray(o.sources)
    ? o.sources.map((s, i) => {
        const so = object(s, `${origin}.sources[${i}]`);
        return { what: String(so.what ?? ''), value: String(so.value ?? ''), source: String(so.source ?? '') };
      })
    : [{ what: 'all numbers', value: '', source: origin }];
  return Object.freeze({
    name: typeof o.name === 'string' ? o.name : 'custom',
    description: typeof o.description === 'string' ? o.description : `cluster from ${origin}`,
    gpusPerNode: field(o, 'gpusPerNode', origin, { integer: true, max: PLAN_LIMITS.gpus }),
    device: {
      name: typeof device.name === 'string' ? device.name : 'device',
      memoryBytes: field(device, 'memoryBytes', where),
      peakFlops: field(device, 'peakFlops', where),
      computeEfficiency: field(device, 'computeEfficiency', where, { max: 1 }),
      memoryBandwidth: field(device, 'memoryBandwidth', where),
    },
    intra: link(o.intra, `${origin}.intra`),
    inter: link(o.inter, `${origin}.inter`),
    collectiveLatency: o.collectiveLatency === undefined ? NCCL_BASE : field(o, 'collectiveLatency', origin, { min: -1 }),
    allReduceLatencyFactor: o.allReduceLatencyFactor === undefined ? 1 : field(o, 'allReduceLatencyFactor', origin),
    runtimeReserveBytes: o.runtimeReserveBytes === undefined ? 1 * GiB : field(o, 'runtimeReserveBytes', origin, { min: -1 }),
    ...(o.reduceBandwidth !== undefined ? { reduceBandwidth: field(o, 'reduceBandwidth', origin) } : {}),
    sources: Object.freeze(sources),
    ...(o.emulated !== undefined ? { emulated: o.emulated as EmulatedDetails } : {}),
  });
}
