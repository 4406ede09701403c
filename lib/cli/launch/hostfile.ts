/**
 * DeepSpeed-format hostfiles (`hostname slots=N`) and the --include / --exclude /
 * --num-nodes / --num-gpus selection over them, so DeepSpeed users keep their files.
 */
import * as fs from 'node:fs';
import { UsageError } from './errors';

/** One host of a hostfile and its slot count (GPUs, or processes when there are none). */
export interface HostEntry {
  readonly host: string;
  readonly slots: number;
}

/** One host chosen to run a node: which of its slots (indices) the node uses. */
export interface SelectedHost {
  readonly host: string;
  /** Slot indices in increasing order; the node runs one rank per slot. */
  readonly slots: readonly number[];
}

/** How to narrow a hostfile down, as DeepSpeed's launcher does. */
export interface HostSelection {
  /** `NAME[:SLOT[,SLOT...]]@NAME...`: only these hosts (and slots). */
  readonly include?: string;
  /** `NAME[:SLOT[,SLOT...]]@NAME...`: everything but these hosts (or slots). */
  readonly exclude?: string;
  /** Keep the first N hosts. */
  readonly numNodes?: number;
  /** Keep the first N slots of every host. */
  readonly numGpus?: number;
}

/**
 * Parses hostfile text. `#` starts a comment, blank lines are skipped; every other line must be
 * `hostname slots=N` with N >= 1. Duplicate hosts and bad lines are {@link UsageError}s naming
 * the file and line. `name` is only used in messages.
 */
export function parseHostfile(text: string, name = 'hostfile'): HostEntry[] {
  const entries: HostEntry[] = [];
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.replace(/#.*$/, '').trim();
    if (line === '') return;
    const m = /^(\S+)\s+slots\s*=\s*(\S+)$/.exec(line);
    if (!m) {
      throw new UsageError(`${name} line ${lineNo}: expected 'hostname slots=N', got '${rawLine.trim()}'`);
    }
    const host = m[1];
    if (!/^\d+$/.test(m[2]) || Number(m[2]) < 1) {
      throw new UsageError(`${name} line ${lineNo}: slots must be a positive integer, got '${m[2]}' for host '${host}'`);
    }
    const first = seen.get(host);
    if (first !== undefined) {
      throw new UsageError(`${name} line ${lineNo}: host '${host}' is already listed on line ${first}`);
    }
    seen.set(host, lineNo);
    entries.push({ host, slots: Number(m[2]) });
  });
  if (entries.length === 0) throw new UsageError(`${name} lists no hosts`);
  return entries;
}

/** Reads and parses a hostfile; a missing or unreadable file is a {@link UsageError}. */
export function readHostfile(path: string): HostEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    // Duck-typed: errors from fs may come from another realm (e.g. under jest), failing instanceof.
    const code = (err as { code?: unknown } | null)?.code;
    const why = typeof code === 'string' ? code : String(err);
    throw new UsageError(`cannot read hostfile '${path}' (${why})`);
  }
  return parseHostfile(text, `hostfile ${path}`);
}

/** Parses `NAME[:SLOT,...]@NAME...` into host -> slots (undefined = the whole host). */
function parseFilter(spec: string, flag: string, hosts: readonly HostEntry[]): Map<string, Set<number> | undefined> {
  const byName = new Map(hosts.map((h) => [h.host, h]));
  const out = new Map<string, Set<number> | undefined>();
  if (spec.trim() === '') throw new UsageError(`${flag} is empty: expected NAME[:SLOT[,SLOT...]][@NAME...]`);
  for (const part of spec.split('@')) {
    const m = /^([^:\s]+)(?::(\d+(?:,\d+)*))?$/.exec(part.trim());
    if (!m) throw new UsageError(`${flag} '${spec}': '${part}' is not NAME or NAME:SLOT[,SLOT...]`);
    const entry = byName.get(m[1]);
    if (!entry) {
      throw new UsageError(`${flag} '${spec}': host '${m[1]}' is not in the hostfile (hosts: ${hosts.map((h) => h.host).join(', ')})`);
    }
    if (out.has(m[1])) throw new UsageError(`${flag} '${spec}': host '${m[1]}' is named twice`);
    if (m[2] === undefined) {
      out.set(m[1], undefined);
      continue;
    }
    const slots = new Set<number>();
    for (const s of m[2].split(',')) {
      const slot = Number(s);
      if (slot >= entry.slots) {
        throw new UsageError(`${flag} '${spec}': host '${m[1]}' has slots 0..${entry.slots - 1}, not ${slot}`);
      }
      slots.add(slot);
    }
    out.set(m[1], slots);
  }
  return out;
}

/**
 * Applies --include / --exclude (mutually exclusive), then --num-nodes and --num-gpus, keeping the
 * hostfile's order (node rank i = i-th remaining host). Hosts left with no slot are dropped;
 * selecting nothing is an error.
 */
export function selectHosts(hosts: readonly HostEntry[], selection: HostSelection = {}): SelectedHost[] {
  const { include, exclude, numNodes, numGpus } = selection;
  if (include !== undefined && exclude !== undefined) {
    throw new UsageError('--include and --exclude cannot be used together');
  }
  let selected: SelectedHost[];
  if (include !== undefined) {
    const filter = parseFilter(include, '--include', hosts);
    selected = hosts
      .filter((h) => filter.has(h.host))
      .map((h) => {
        const slots = filter.get(h.host);
        return { host: h.host, slots: slots ? [...slots].sort((a, b) => a - b) : range(h.slots) };
      });
  } else if (exclude !== undefined) {
    const filter = parseFilter(exclude, '--exclude', hosts);
    selected = hosts
      .filter((h) => !(filter.has(h.host) && filter.get(h.host) === undefined))
      .map((h) => {
        const drop = filter.get(h.host);
        return { host: h.host, slots: range(h.slots).filter((s) => !drop?.has(s)) };
      });
  } else {
    selected = hosts.map((h) => ({ host: h.host, slots: range(h.slots) }));
  }
  selected = selected.filter((h) => h.slots.length > 0);
  if (numNodes !== undefined) {
    if (numNodes > selected.length) {
      throw new UsageError(`--num-nodes ${numNodes}: only ${selected.length} host(s) are available after selection`);
    }
    selected = selected.slice(0, numNodes);
  }
  if (numGpus !== undefined) selected = selected.map((h) => ({ host: h.host, slots: h.slots.slice(0, numGpus) }));
  if (selected.length === 0) throw new UsageError('the hostfile selection leaves no host to run on');
  return selected;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
