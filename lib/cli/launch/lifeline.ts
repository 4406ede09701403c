/**
 * What a hostfile start and its remote agents say to each other over ssh.
 *
 * Starter -> agent, on the agent's standard input: the store token alone on the first line
 * (read by the remote shell), then one JSON message per line: `env` (the carried environment,
 * always first), `ping` (every heartbeat interval, so an agent can tell a silent starter from
 * a quiet one), `signal` (the starter received SIGINT/SIGTERM/...: the agent acts as if it had),
 * and `lost` (a node's ssh ended without its report: the agent ends the job naming that node).
 * The input closing, or no line for the heartbeat timeout, means the starter is gone.
 *
 * Agent -> starter: one {@link REPORT_PREFIX} line on standard output at the end, with the
 * job's end record and this node's ranks, from which the starter prints one summary and takes
 * the exit code. Rank output never starts a line with it (rank lines start with `[rank N]`).
 */
import type { Readable } from 'node:stream';
import type { EndRecord } from './summary';
import type { WorkerResult } from './supervisor';

/** A message from the starter to an agent. */
export type StarterMessage =
  | { readonly t: 'env'; readonly env: Record<string, string> }
  | { readonly t: 'ping' }
  | { readonly t: 'signal'; readonly signal: NodeJS.Signals; readonly host: string }
  | { readonly t: 'lost'; readonly nodeRank: number; readonly host: string; readonly message: string; readonly time: number };

/** The signals a starter forwards. */
const SIGNALS = new Set(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']);

/** One line of the protocol. */
export function encodeMessage(m: StarterMessage): string {
  return `${JSON.stringify(m)}\n`;
}

/** Parses one line; undefined for anything that is not a well-formed message. */
export function decodeMessage(line: string): StarterMessage | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as Record<string, unknown>;
  switch (m.t) {
    case 'ping':
      return { t: 'ping' };
    case 'env': {
      const env = m.env;
      if (typeof env !== 'object' || env === null) return undefined;
      const entries = Object.entries(env as Record<string, unknown>);
      if (!entries.every(([, val]) => typeof val === 'string')) return undefined;
      return { t: 'env', env: Object.fromEntries(entries) as Record<string, string> };
    }
    case 'signal':
      return typeof m.signal === 'string' && SIGNALS.has(m.signal) && typeof m.host === 'string'
        ? { t: 'signal', signal: m.signal as NodeJS.Signals, host: m.host }
        : undefined;
    case 'lost':
      return Number.isInteger(m.nodeRank) && typeof m.host === 'string' && typeof m.message === 'string' && typeof m.time === 'number'
        ? { t: 'lost', nodeRank: m.nodeRank as number, host: m.host, message: m.message, time: m.time }
        : undefined;
    default:
      return undefined;
  }
}

/** Starts an agent's report line. */
export const REPORT_PREFIX = 'MICS_LAUNCH_REPORT ';

/** What an agent tells the starter at its end. */
export interface AgentReport {
  readonly nodeRank: number;
  readonly host: string;
  /** How the job ended, as this agent last read it from the store. */
  readonly end: EndRecord;
  /** This node's ranks in the last attempt. */
  readonly local: readonly WorkerResult[];
  readonly attempts: number;
  readonly worldSize: number;
  /** The agent's own exit code. */
  readonly code: number;
}

export function encodeReport(r: AgentReport): string {
  return `${REPORT_PREFIX}${JSON.stringify(r)}\n`;
}

/** Parses a report line (with its prefix); undefined when it is not one. */
export function decodeReport(line: string): AgentReport | undefined {
  if (!line.startsWith(REPORT_PREFIX)) return undefined;
  try {
    const r = JSON.parse(line.slice(REPORT_PREFIX.length)) as AgentReport;
    return typeof r === 'object' && r !== null && typeof r.nodeRank === 'number' && typeof r.end === 'object' ? r : undefined;
  } catch {
    return undefined;
  }
}

/** What ended an agent's lifeline. */
export type LifelineLoss = 'closed' | 'silent';

/**
 * The agent's end of the lifeline: parses the starter's messages from `input` and notices
 * when the starter is gone (input closed, or silent for `silenceMs`).
 */
export class Lifeline {
  private buffer = '';
  private lastHeard = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private envWaiter: ((env: Record<string, string> | undefined) => void) | undefined;
  private env: Record<string, string> | undefined;
  /** Messages and a loss that came before {@link Lifeline.attach}: replayed to it. */
  private readonly queued: StarterMessage[] = [];
  private loss: LifelineLoss | undefined;
  private handlers: { onMessage: (m: StarterMessage) => void; onLoss: (why: LifelineLoss) => void } | undefined;

  constructor(
    private readonly input: Readable,
    private readonly silenceMs: number,
  ) {
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => this.push(chunk));
    input.on('end', () => this.lose('closed'));
    input.on('close', () => this.lose('closed'));
    input.on('error', () => this.lose('closed'));
    this.timer = setInterval(() => {
      if (Date.now() - this.lastHeard > this.silenceMs) this.lose('silent');
    }, Math.max(50, Math.min(1000, Math.floor(this.silenceMs / 5))));
    // The lifeline watches; it must not be what keeps the agent alive.
    this.timer.unref();
  }

  /** The carried environment: the first message; undefined when the starter went away before sending it. */
  environment(): Promise<Record<string, string> | undefined> {
    if (this.env !== undefined || this.ended) return Promise.resolve(this.env);
    return new Promise((resolve) => {
      this.envWaiter = resolve;
    });
  }

  /**
   * Hands every `signal` and `lost` message to `onMessage`, and the starter's loss (once) to
   * `onLoss`; what arrived before is replayed at once.
   */
  attach(onMessage: (m: StarterMessage) => void, onLoss: (why: LifelineLoss) => void): void {
    this.handlers = { onMessage, onLoss };
    for (const m of this.queued.splice(0)) onMessage(m);
    if (this.loss !== undefined) onLoss(this.loss);
  }

  /** Stops watching (the agent is done). */
  close(): void {
    this.ended = true;
    clearInterval(this.timer);
    this.input.removeAllListeners('data');
    this.input.on('data', () => undefined);
    this.input.on('error', () => undefined);
    this.input.destroy();
  }

  private push(chunk: string): void {
    this.lastHeard = Date.now();
    this.buffer += chunk;
    for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 1);
      const m = decodeMessage(line);
      if (m === undefined || this.ended) continue;
      if (m.t === 'env') {
        this.env = m.env;
        this.envWaiter?.(m.env);
        this.envWaiter = undefined;
      } else if (m.t !== 'ping') {
        if (this.handlers) this.handlers.onMessage(m);
        else this.queued.push(m);
      }
    }
  }

  private lose(why: LifelineLoss): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    this.envWaiter?.(undefined);
    this.envWaiter = undefined;
    this.loss = why;
    this.handlers?.onLoss(why);
  }
}
