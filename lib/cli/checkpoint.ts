/**
 * `mics checkpoint inspect | verify | export`: checkpoints written by engine.save(),
 * read without an engine or a job.
 */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from '../core/errors';
import { Checkpoint, type VerifyReport } from '../engine/checkpoint/reader';
import { exportCheckpoint } from '../engine/checkpoint/weights';
import { INDEX_FILE, LATEST_FILE, type CheckpointIndex } from '../engine/checkpoint/format';
import type { ExportDType } from '../engine/checkpoint/types';

/** What `inspect` shows. */
export interface InspectReport {
  path: string;
  tag: string;
  /** The tag `latest` names in the parent directory, if any. */
  latest?: string;
  /** Other checkpoints beside this one: tag and step. */
  siblings: { tag: string; step: number }[];
  index: CheckpointIndex;
}

/** Reads what `inspect` shows (the index; no shard data). */
export async function inspectCheckpoint(dir: string, tag?: string): Promise<InspectReport> {
  const checkpoint = await Checkpoint.open(dir, { tag });
  await checkpoint.close();
  const parent = path.dirname(checkpoint.path);
  const latestFile = path.join(parent, LATEST_FILE);
  const latest = fs.existsSync(latestFile) ? fs.readFileSync(latestFile, 'utf8').trim() : undefined;
  const siblings: { tag: string; step: number }[] = [];
  for (const entry of fs.readdirSync(parent)) {
    if (entry.startsWith('.') || entry === checkpoint.tag) continue;
    try {
      const index = JSON.parse(fs.readFileSync(path.join(parent, entry, INDEX_FILE), 'utf8')) as CheckpointIndex;
      if (index.format === 'mics-checkpoint') siblings.push({ tag: entry, step: index.step });
    } catch {
      // not a checkpoint
    }
  }
  siblings.sort((a, b) => a.step - b.step || a.tag.localeCompare(b.tag));
  return { path: checkpoint.path, tag: checkpoint.tag, latest, siblings, index: checkpoint.index };
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(2)} ${units[u]}`;
}

/** The human-readable `inspect` text. */
export function formatInspect(report: InspectReport): string {
  const i = report.index;
  const l = i.layout;
  const elements = i.parameters.reduce((s, p) => s + p.numel, 0);
  const o = i.optimizer;
  const optimizer =
    o.type === 'adamw'
      ? `adamw lr=${o.lr} betas=(${o.beta1}, ${o.beta2}) eps=${o.eps} weightDecay=${o.weightDecay}`
      : `sgd lr=${o.lr} momentum=${o.momentum} dampening=${o.dampening} weightDecay=${o.weightDecay} nesterov=${o.nesterov}`;
  const lines = [
    `checkpoint ${report.tag} at ${report.path}${report.latest === report.tag ? ' (latest)' : report.latest ? ` (latest is ${report.latest})` : ''}`,
    `step         ${i.step}`,
    `saved        ${i.createdAt} by mics ${i.packageVersion} (format ${i.formatVersion})`,
    `layout       W=${l.worldSize} S=${l.partitionSize} R=${l.replicationSize} G=${l.ranksPerNode} nodes=${l.nodes}${l.hierarchical ? ' hierarchical' : ''}, alignment ${l.alignment}, ${l.units.length} units`,
    `precision    ${i.precision}; states ${i.states.map((s) => `${s} ${i.dtypes[s] ?? 'F32'}`).join(', ')}`,
    `optimizer    ${optimizer}, accumulation ${i.accumulationSteps}`,
    `schedule     ${i.schedule ? JSON.stringify(i.schedule) : 'a function (not stored)'}`,
    `loss scaler  ${i.lossScaler ? JSON.stringify(i.lossScaler) : 'none'}`,
    `user state   ${i.userState === null ? 'none' : JSON.stringify(i.userState)}`,
    `parameters   ${i.parameters.length} (${elements} elements)`,
    `files        ${i.files.length}, ${bytes(i.totalBytes)} (${i.totalBytes} bytes)`,
    ...i.files.map((f) => `  ${f.name}  ${String(f.bytes).padStart(14)} bytes  xxh64 ${f.checksum}  slice ${f.partitionRank}, written by world rank ${f.writer}`),
  ];
  if (report.siblings.length > 0) lines.push(`others here  ${report.siblings.map((s) => `${s.tag} (step ${s.step})`).join(', ')}`);
  return lines.join('\n');
}

/** The human-readable `verify` text. */
export function formatVerify(report: VerifyReport, seconds: number): string {
  const lines = report.files.map((f) => `  ${f.ok ? 'ok     ' : 'FAILED '} ${f.name} (${f.bytes} bytes)${f.problem ? `: ${f.problem}` : ''}`);
  const failed = report.files.filter((f) => !f.ok).length;
  lines.unshift(`checkpoint ${report.tag} at ${report.path}`);
  lines.push(
    failed === 0
      ? `ok: ${report.files.length} files, ${report.bytes} bytes read and checked in ${seconds.toFixed(2)} s`
      : `FAILED: ${failed} of ${report.files.length} files are damaged`,
  );
  return lines.join('\n');
}

/** "5GB" (powers of 1000), "5GiB" (powers of 1024) or plain bytes. */
export function parseByteSize(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?$/i.exec(text.trim());
  if (!match) throw invalidArgument(`${flag} ${text} is not a size: use bytes like 500000000, 500MB, 5GB or 4GiB`);
  const power = ['', 'K', 'M', 'G', 'T'].indexOf(match[2].toUpperCase());
  const n = Math.round(Number(match[1]) * (match[3] ? 1024 : 1000) ** power);
  if (!(n >= 1)) throw invalidArgument(`${flag} ${text} is not valid: use at least 1 byte`);
  return n;
}

export function addCheckpointCommands(program: Command): void {
  const checkpoint = program.command('checkpoint').description('inspect, verify and export checkpoints written by engine.save()');

  checkpoint
    .command('inspect <dir>')
    .description('step, layout (W, S, G), optimizer, schedule, user state, files with sizes and checksums')
    .option('--tag <tag>', 'which checkpoint of <dir> (default: the one latest names, or <dir> itself)')
    .option('--json', 'print the index as JSON')
    .action(async (dir: string, options: { tag?: string; json?: boolean }) => {
      const report = await inspectCheckpoint(dir, options.tag);
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInspect(report)}\n`);
    });

  checkpoint
    .command('verify <dir>')
    .description('read every byte of every file and check it against the index (exit 1 when anything is damaged)')
    .option('--tag <tag>', 'which checkpoint of <dir>')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, options: { tag?: string; json?: boolean }) => {
      const started = performance.now();
      const opened = await Checkpoint.open(dir, { tag: options.tag });
      let report: VerifyReport;
      try {
        report = await opened.verify();
      } finally {
        await opened.close();
      }
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(options.json ? `${JSON.stringify({ ...report, seconds }, null, 2)}\n` : `${formatVerify(report, seconds)}\n`);
      if (!report.ok) process.exitCode = 1;
    });

  checkpoint
    .command('export <dir> <out>')
    .description('write the weights as Hugging Face safetensors: <out>/model.safetensors, or model-0000k-of-0000n files and model.safetensors.index.json')
    .option('--tag <tag>', 'which checkpoint of <dir>')
    .option('--dtype <dtype>', 'f32 or bf16', 'f32')
    .option('--max-shard-size <size>', 'split into files of at most this size (5GB, 500MB, 4GiB)', '5GB')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, out: string, options: { tag?: string; dtype: string; maxShardSize: string; json?: boolean }) => {
      if (options.dtype !== 'f32' && options.dtype !== 'bf16') throw invalidArgument(`--dtype ${options.dtype} is not valid: use f32 or bf16`);
      const result = await exportCheckpoint(dir, out, {
        tag: options.tag,
        dtype: options.dtype as ExportDType,
        maxShardBytes: parseByteSize(options.maxShardSize, '--max-shard-size'),
      });
      process.stdout.write(
        options.json
          ? `${JSON.stringify(result, null, 2)}\n`
          : `exported ${result.tensors} tensors (${options.dtype}) into ${out}: ${result.files.join(', ')}; ${result.bytes} bytes in ${result.seconds.toFixed(2)} s\n`,
      );
    });
}
