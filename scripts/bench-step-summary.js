#!/usr/bin/env node
/**
 * Summarises a scripts/bench-step.sh run directory: medians over repeats of every
 * strategy's step time per configuration, MiCS over ZeRO-3, the volume prediction
 * for the hierarchical partition group, and (with a compute sweep) sweep.svg: steps/s
 * against emulated compute per unit, one line per strategy. Also writes results.json:
 * each configuration's and strategy's median run in the form `mics simulate
 * --calibrate --step-bench` compares with its predictions.
 *
 *   node scripts/bench-step-summary.js bench-results/step-<time>  > summary.md
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/bench-step-summary.js DIR');
  process.exit(2);
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// runs[config][repeat] = {options, rows}
const runs = {};
for (const f of fs.readdirSync(dir)) {
  const m = /^(\w+)\.r(\d+)\.node0\.log$/.exec(f);
  if (!m) continue;
  for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
    const j = line.indexOf('{"header"');
    if (j >= 0) (runs[m[1]] ??= {})[m[2]] = JSON.parse(line.slice(j));
  }
}
// The simulator's form of each configuration's and strategy's median run (by step time).
const results = [];
const order = (config) => (config === 'acc4' ? -2 : config === 'acc1' ? -1 : Number(/^sweep([\d.]+)$/.exec(config)?.[1] ?? 1e9));
for (const [config, repeats] of Object.entries(runs).sort(([a], [b]) => order(a) - order(b))) {
  const byStrategy = {};
  for (const run of Object.values(repeats)) {
    run.rows.forEach((row, i) => (byStrategy[row.strategy] ??= []).push({ stepMs: row.stepMs, result: run.results?.[i] }));
  }
  for (const [strategy, list] of Object.entries(byStrategy)) {
    const sorted = [...list].sort((a, b) => a.stepMs - b.stepMs);
    const chosen = sorted[(sorted.length - 1) >> 1];
    if (chosen.result) results.push({ configuration: config, benchStrategy: strategy, runs: list.length, ...chosen.result });
  }
}
fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ results }, null, 1) + '\n');

const strategyTimes = (config) => {
  const out = {};
  for (const run of Object.values(runs[config] ?? {})) for (const r of run.rows) (out[r.strategy] ??= []).push(r);
  return out;
};
const out = [];
const describe = (config) => {
  const any = Object.values(runs[config] ?? {})[0];
  if (!any) return undefined;
  const o = any.options;
  return `${any.header}; ${o.units} units x ${o.unitParams} params (${((o.units * o.unitParams) / 1e6).toFixed(1)}M), ${o.precision} gathers, ${o.reduceDtype} reduce, accumulation ${o.accumulation}, compute ${o.computeMs} ms/unit`;
};

for (const config of ['acc4', 'acc1']) {
  const times = strategyTimes(config);
  if (Object.keys(times).length === 0) continue;
  const n = Object.keys(runs[config]).length;
  out.push(`### ${config}: ${describe(config)} (${n} runs)`, '');
  out.push(
    '| strategy | S | hierarchical | step (ms), median | steps/s | per run (ms) | x ZeRO-3 | MB per step, rank 0: partition all-gather / reduce-scatter (both stages when hierarchical), inter-node all-gather (+ inter-node reduce-scatter), replication all-reduce |',
    '|---|---:|:---:|---:|---:|:---|---:|:---|',
  );
  const zero3 = times.zero3 ? median(times.zero3.map((r) => r.stepMs)) : undefined;
  for (const [strategy, rows] of Object.entries(times)) {
    const ms = median(rows.map((r) => r.stepMs));
    const b = rows[0].stats.bytes;
    const S = rows[0].partitionSize;
    const mb = (x) => (x / 1e6).toFixed(1);
    const ag = rows[0].hierarchical ? b.interNode.allGather + b.intraNode.allGather : b.partition.allGather;
    // A hierarchical reduce-scatter (engines from issue 17 on) counts its two stages under intraNode/interNode.
    const rs = b.partition.reduceScatter + (b.interNode.reduceScatter ?? 0) + (b.intraNode.reduceScatter ?? 0);
    out.push(
      `| ${strategy} | ${S} | ${rows[0].hierarchical ? 'yes' : 'no'} | ${ms.toFixed(0)} | ${(1000 / ms).toFixed(3)} | ${rows.map((r) => r.stepMs.toFixed(0)).join(' ')} | ` +
        `${zero3 ? `**${(zero3 / ms).toFixed(2)}x**` : '-'} | ${mb(ag)} / ${mb(rs)}, ${mb(b.interNode.allGather)}${b.interNode.reduceScatter ? ` + ${mb(b.interNode.reduceScatter)}` : ''}, ${mb(b.replication.allReduce)} |`,
    );
  }
  out.push('');
  if (times['mics-span'] && times.zero3) {
    const o = Object.values(runs[config])[0].options;
    const half = o.precision === 'fp32' ? 4 : 2;
    const red = o.reduceDtype === 'f32' ? 4 : 2;
    const S = times.zero3[0].partitionSize;
    const G = S / 2;
    // per micro-step and byte of model: 2 all-gathers (forward, backward) + 1 reduce-scatter;
    // flat: (S-1)/S of each crosses; hierarchical all-gather: (S-G)/S; the reduce-scatter
    // too when the engine reduces hierarchically (its stats say so), else (S-1)/S.
    const hierReduce = (times['mics-span'][0].stats.bytes.interNode.reduceScatter ?? 0) > 0;
    const flat = ((2 * half + red) * (S - 1)) / S;
    const hier = (2 * half * (S - G)) / S + (red * (hierReduce ? S - G : S - 1)) / S;
    const measured = median(times.zero3.map((r) => r.stepMs)) / median(times['mics-span'].map((r) => r.stepMs));
    out.push(
      `mics-span (S=${S}, hierarchical${hierReduce ? ' all-gather and reduce-scatter' : ' all-gather'}) against zero3 (S=${S}, flat): cross-node volume predicts ${(flat / hier).toFixed(2)}x ` +
        `((2 x ${half} + ${red}) x ${S - 1}/${S} over 2 x ${half} x ${S - G}/${S} + ${red} x ${hierReduce ? S - G : S - 1}/${S}); measured ${measured.toFixed(2)}x.`,
      '',
    );
  }
}

// The sweep: configs sweep<ms>
const sweep = Object.keys(runs)
  .map((c) => /^sweep(\d+(?:\.\d+)?)$/.exec(c))
  .filter(Boolean)
  .map((m) => ({ config: m[0], ms: Number(m[1]) }))
  .sort((a, b) => a.ms - b.ms);
if (sweep.length > 0) {
  const series = {};
  out.push(`### sweep: ${describe(sweep[0].config)?.replace(/compute [\d.]+ ms\/unit/, 'compute per unit swept')}`, '');
  out.push('| compute per unit (ms, forward; backward 2x) | ' + ['zero3', 'mics-span', 'mics-node'].map((s) => `${s} steps/s`).join(' | ') + ' | compute-only steps/s |', '|---:|---:|---:|---:|---:|');
  const o = Object.values(runs[sweep[0].config])[0].options;
  for (const { config, ms } of sweep) {
    const times = strategyTimes(config);
    const cells = ['zero3', 'mics-span', 'mics-node'].map((s) => {
      if (!times[s]) return '-';
      const v = 1000 / median(times[s].map((r) => r.stepMs));
      (series[s] ??= []).push([ms, v]);
      return v.toFixed(3);
    });
    const computeOnly = ms > 0 ? 1000 / (3 * ms * o.units * o.accumulation) : Infinity;
    (series['compute only'] ??= []).push([ms, computeOnly]);
    out.push(`| ${ms} | ${cells.join(' | ')} | ${ms > 0 ? computeOnly.toFixed(3) : '-'} |`);
  }
  out.push('', 'Plot: sweep.svg', '');
  fs.writeFileSync(path.join(dir, 'sweep.svg'), plot(series, 'emulated compute per unit, forward (ms)', 'optimizer steps/s'));
}
process.stdout.write(out.join('\n') + '\n');

/** A small line chart as SVG (log-scaled y). */
function plot(series, xLabel, yLabel) {
  const W = 640;
  const H = 400;
  const m = { l: 70, r: 150, t: 20, b: 50 };
  const pts = Object.values(series).flat().filter(([, y]) => Number.isFinite(y) && y > 0);
  const xMax = Math.max(...pts.map(([x]) => x));
  const yMin = Math.min(...pts.map(([, y]) => y));
  const yMax = Math.max(...pts.map(([, y]) => y));
  const ly0 = Math.floor(Math.log10(yMin));
  const ly1 = Math.ceil(Math.log10(yMax));
  const sx = (x) => m.l + (x / xMax) * (W - m.l - m.r);
  const sy = (y) => H - m.b - ((Math.log10(y) - ly0) / (ly1 - ly0)) * (H - m.t - m.b);
  const colors = { zero3: '#d62728', 'mics-span': '#1f77b4', 'mics-node': '#2ca02c', 'compute only': '#7f7f7f' };
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  for (let e = ly0; e <= ly1; e++) {
    const y = sy(10 ** e);
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="${m.l - 8}" y="${y + 4}" text-anchor="end">${10 ** e}</text>`);
  }
  for (const [x] of series[Object.keys(series)[0]]) {
    parts.push(`<line x1="${sx(x)}" x2="${sx(x)}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/><text x="${sx(x)}" y="${H - m.b + 16}" text-anchor="middle">${x}</text>`);
  }
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${xLabel}</text>`);
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${yLabel}</text>`);
  let legend = 0;
  for (const [name, data] of Object.entries(series)) {
    const d = data.filter(([, y]) => Number.isFinite(y) && y > 0);
    if (d.length === 0) continue;
    const c = colors[name] ?? '#000';
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${name === 'compute only' ? ' stroke-dasharray="5 4"' : ''} points="${d.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of d) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${c}"/>`);
    parts.push(`<line x1="${W - m.r + 10}" x2="${W - m.r + 30}" y1="${m.t + 10 + legend * 18}" y2="${m.t + 10 + legend * 18}" stroke="${c}" stroke-width="2"/><text x="${W - m.r + 36}" y="${m.t + 14 + legend * 18}">${name}</text>`);
    legend++;
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
