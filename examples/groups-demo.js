// The README's main job: MiCS groups on 2 emulated nodes of 2 ranks.
//
//   npx mics-launch --nproc-per-node 4 --emulate-nodes 2 examples/groups-demo.js
//
// Each rank holds a 1/S slice of a "parameter" vector, all-gathers it inside its
// partition group (hierarchically: across nodes, then inside the node), then
// reduce-scatters a "gradient" back to slices, and prints what it holds and the
// bandwidth it saw.
'use strict';
const { init, createGroups, destroyGroups, allGather, reduceScatter, allocHost } = require('mics');

const SHARD = Number(process.env.DEMO_SHARD_ELEMENTS || 1 << 20); // floats per rank

async function main() {
  const world = await init();
  const groups = await createGroups(world, { partitionSize: world.size });
  const { partition } = groups;
  const S = partition.size;

  // This rank's slice of the parameters: value = global index of the element.
  const shard = new Float32Array(SHARD).map((_, i) => partition.rank * SHARD + i);
  // Long-lived flat buffers come from allocHost: the ranks of a node read each
  // other's inputs there in place (the all-gather's in-node stage reads slots of it).
  const full = allocHost('f32', S * SHARD);
  let start = process.hrtime.bigint();
  await allGather(groups, shard, full);
  const gatherUs = Number(process.hrtime.bigint() - start) / 1e3;
  const gatheredOk = full.every((v, i) => v === i);

  // A gradient of ones on every rank: after reduce-scatter each slice holds S.
  const gradient = allocHost('f32', S * SHARD).fill(1);
  const gradShard = new Float32Array(SHARD);
  start = process.hrtime.bigint();
  await reduceScatter(groups, gradient, gradShard);
  const scatterUs = Number(process.hrtime.bigint() - start) / 1e3;
  const scatteredOk = gradShard.every((v) => v === S);

  const bytes = full.byteLength;
  const busbw = (us) => ((bytes / (us * 1e-6) / 1e9) * (S - 1)) / S;
  const how = groups.intraNode
    ? `hierarchical (${groups.interNode.size} nodes x ${groups.intraNode.size} ranks)`
    : `flat (${groups.layout.flatReason})`;
  console.log(
    `rank ${world.rank} (node ${world.nodes[world.rank]}): partition ${partition.rank}/${S}, ` +
      `holds elements [${partition.rank * SHARD}, ${(partition.rank + 1) * SHARD}); ` +
      `allGather ${how}: ${gatheredOk ? 'ok' : 'WRONG'}, ${(gatherUs / 1e3).toFixed(1)} ms, busbw ${busbw(gatherUs).toFixed(2)} GB/s; ` +
      `reduceScatter: ${scatteredOk ? 'ok' : 'WRONG'} (each element = ${gradShard[0]}), ${(scatterUs / 1e3).toFixed(1)} ms, busbw ${busbw(scatterUs).toFixed(2)} GB/s`,
  );
  destroyGroups(groups);
  world.destroy();
  if (!gatheredOk || !scatteredOk) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`rank ${process.env.RANK}: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
});
