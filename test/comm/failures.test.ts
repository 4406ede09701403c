/**
 * Failure semantics of the CPU backend (DESIGN.md "Failure model"), on real processes:
 * no call hangs; a peer killed with SIGKILL mid-op turns into an error on every
 * survivor within seconds, naming the dead rank, the group and the op; mismatched
 * calls fail with MICS_MISMATCH naming both calls; a rank that never calls makes the
 * others time out after the configured timeout; abort() reaches the peers; a failed
 * communicator says "aborted" on later use; nothing is left behind (processes,
 * /dev/shm segments), and stale segments of a killed process are removed by the next
 * start; a rank with the wrong store token fails init clearly while the store keeps
 * serving the job; a peer that writes malformed data into shared memory or onto the
 * ring (forged here by a real rank process) gets an error, not a read out of bounds.
 *
 * Timing is only used with wide margins: "within seconds" is checked as less than
 * 10 s against op timeouts of 60 s, so a pass never depends on the machine's speed.
 */
import * as fs from 'node:fs';
import {
  commWorker,
  describeRanks,
  killAllRanks,
  processAlive,
  runRanks,
  shmSegmentsOf,
  startRanks,
  type RankResult,
} from '../helpers/ranks';

afterAll(() => killAllRanks());

interface ErrorInfo {
  code?: string;
  message?: string;
  rank?: number;
  group?: string;
  op?: string;
  peer?: number;
}

function killedAt(results: RankResult[]): number {
  const m = results.map((r) => /KILLED_AT (\d+)/.exec(r.stdout)).find((x) => x !== null);
  if (!m) throw new Error(`the victim never reported its kill:\n${describeRanks(results)}`);
  return Number(m[1]);
}

/** Every survivor finished its scenario (exit 0, RESULT line); the victim died of SIGKILL. */
function survivorsOf(results: RankResult[], victim: number): RankResult[] {
  const summary = describeRanks(results);
  expect({ victim, signal: results[victim].signal }).toEqual({ victim, signal: 'SIGKILL' });
  const survivors = results.filter((r) => r.rank !== victim);
  for (const r of survivors) {
    if (r.code !== 0 || !r.json || r.json.error === undefined) {
      throw new Error(`survivor ${r.rank} did not report an error from the op:\n${summary}\n${JSON.stringify(r.json ?? {}).slice(0, 1500)}`);
    }
  }
  return survivors;
}

function expectNothingLeft(results: RankResult[]): void {
  const pids = results.map((r) => r.pid);
  expect(pids.filter(processAlive)).toEqual([]);
  expect(shmSegmentsOf(pids)).toEqual([]);
}

describe('kill -9 of a peer in the middle of an op', () => {
  async function killRun(
    nodes: number | undefined,
    op: string,
    victim: number,
    registered = false,
    count = 1 << 20,
  ): Promise<{ results: RankResult[]; t: number }> {
    const results = await runRanks({
      n: 4,
      nodes,
      args: ['kill', JSON.stringify({ victim, op, count, before: 3, child: true, delayMs: 5, registered })],
      timeoutMs: 60000,
    });
    return { results, t: killedAt(results) };
  }

  /** What holds on every transport, every time. */
  function expectDetected(r: RankResult, t: number, op: string): ErrorInfo {
    const err = r.json.error as ErrorInfo;
    const where = `rank ${r.rank}: ${JSON.stringify(err)}`;
    expect([where, err.code]).toEqual([where, expect.stringMatching(/^MICS_(PEER_LOST|ABORTED)$/)]);
    expect([where, err.message]).toEqual([where, expect.stringMatching(/rank \d+/)]);
    expect([where, err.group, err.rank]).toEqual([where, 'victims', r.rank]);
    expect([where, err.op]).toEqual([where, expect.stringContaining(op)]);
    // the op timeout is 60 s: this is failure detection, not a timeout
    expect([where, r.json.failedAt - t < 10000]).toEqual([where, true]);
    // the failed communicator is aborted and says so
    expect([where, r.json.later.code, r.json.laterBarrier.code]).toEqual([where, 'MICS_ABORTED', 'MICS_ABORTED']);
    expect(r.json.later.message).toMatch(/aborted/);
    expect(r.json.shmAfter).toEqual([]);
    return err;
  }

  // Small ops (2 and 16 elements: data inline, one sync, often finished on the JS
  // thread) die the same way as large ones.
  it.each([
    ['allReduce', 1 << 20, 2, false],
    ['allGather', 1 << 20, 1, false],
    ['allReduce', 1 << 20, 1, true],
    ['allGather', 1 << 20, 3, true],
    ['allReduce', 2, 2, false],
    ['allGather', 16, 3, true],
  ])(
    'one node, shared memory, %s of %i elements (victim %i, inputs from allocHost: %s): every survivor rejects within seconds with MICS_PEER_LOST (or MICS_ABORTED) naming the dead rank and the op; later use says aborted; nothing is left behind',
    async (op, count, victim, registered) => {
      const { results, t } = await killRun(undefined, op, victim, registered, count);
      for (const r of survivorsOf(results, victim)) {
        const err = expectDetected(r, t, op);
        const where = `rank ${r.rank}: ${JSON.stringify(err)}`;
        expect([where, err.message]).toEqual([where, expect.stringMatching(new RegExp(`rank ${victim}\\b`))]);
        expect([where, err.message]).toEqual([where, expect.stringContaining(op)]);
        expect([where, err.peer]).toEqual([where, victim]);
        // with allocHost inputs the large ops before the kill read the victim's memory in place
        expect([where, r.json.directOps > 0]).toEqual([where, registered && count > 16384]);
      }
      expectNothingLeft(results);
    },
    90000,
  );

  it.each([
    ['allReduce', 2],
    ['allGather', 1],
  ])(
    '2 emulated nodes x 2 ranks, TCP ring, %s: every survivor rejects within seconds with MICS_PEER_LOST (or MICS_ABORTED); later use says aborted; nothing is left behind',
    async (op, victim) => {
      const { results, t } = await killRun(2, op, victim);
      for (const r of survivorsOf(results, victim)) expectDetected(r, t, op);
      expectNothingLeft(results);
    },
    90000,
  );

  it.each([
    ['one node, shared memory', undefined],
    ['2 emulated nodes x 2 ranks, TCP ring', 2],
  ])(
    '%s: survivors that join the op only after the peer (already inside it) died fail with a message naming that rank, the group and the op',
    async (_label, nodes) => {
      // The victim enters the op and dies; the survivors call it 600 ms later.
      const results = await runRanks({
        n: 4,
        nodes,
        args: ['kill', JSON.stringify({ victim: 1, op: 'allReduce', count: 100000, before: 1, child: true, delayMs: 100, lateMs: 600 })],
        timeoutMs: 60000,
      });
      for (const r of survivorsOf(results, 1)) {
        const err = r.json.error as ErrorInfo;
        const where = `rank ${r.rank}: ${JSON.stringify(err)}`;
        expect([where, err.code]).toEqual([where, expect.stringMatching(/^MICS_(PEER_LOST|ABORTED)$/)]);
        expect([where, err.message]).toEqual([where, expect.stringMatching(/rank 1\b/)]);
        expect([where, err.message]).toEqual([where, expect.stringContaining('allReduce')]);
        expect([where, err.message]).toEqual([where, expect.stringContaining("'victims'")]);
        expect([where, err.peer]).toEqual([where, 1]);
      }
      expectNothingLeft(results);
    },
    60000,
  );

  it('a shared-memory segment left by a SIGKILLed process (killed while connecting) is removed by the next start', async () => {
    const child = (await startRanks({ n: 1, script: commWorker, args: ['hangInConnect'], timeoutMs: 30000 })).children.get(0)!;
    const segments = await new Promise<string[]>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: string) => {
        out += c;
        const m = /SEGMENTS (.*)\n/.exec(out);
        if (m) resolve(JSON.parse(m[1]) as string[]);
      });
      child.on('close', () => reject(new Error(`hangInConnect exited early: ${out}`)));
    });
    expect(segments).toHaveLength(1);
    const exited = new Promise((resolve) => child.on('close', resolve));
    child.kill('SIGKILL');
    await exited;
    // The dead process could not clean up: its segment is still there.
    expect(fs.existsSync(`/dev/shm/${segments[0]}`)).toBe(true);
    // Any later start of a multi-rank communicator on this machine removes it.
    const results = await runRanks({ n: 2, args: ['basic'], timeoutMs: 30000 });
    expect(results.map((r) => r.json?.sum)).toEqual([3, 3]);
    expect(fs.existsSync(`/dev/shm/${segments[0]}`)).toBe(false);
    expectNothingLeft(results);
  }, 60000);
});

describe('mismatched calls', () => {
  // Each case runs on a fresh communicator; one rank (1 unless said otherwise) deviates.
  const calls: Record<string, [RegExp, RegExp]> = {
    kind: [/allGather\(count=8, dtype=f32\)/, /allReduce\(count=8, dtype=f32, op=sum\)/],
    count: [/count=9/, /count=8/],
    dtype: [/dtype=i32/, /dtype=f32/],
    redop: [/op=max/, /op=sum/],
    root: [/root=1/, /root=0/],
  };

  /**
   * The deviant is the rank whose call differs from the one most ranks made; every
   * rank names it (error.peer and the message), the deviant included, on either transport.
   */
  function expectMismatchNamed(r: RankResult, name: string, deviant: number, n: number): void {
    const [deviantCall, othersCall] = calls[name];
    const c = r.json[name];
    const where = `rank ${r.rank} case ${name}: ${JSON.stringify(c)}`;
    expect([where, c.error?.code]).toEqual([where, 'MICS_MISMATCH']);
    expect([where, deviantCall.test(c.error.message), othersCall.test(c.error.message)]).toEqual([where, true, true]);
    expect([where, c.error.message.includes(`mismatch-${name}`)]).toEqual([where, true]);
    expect([where, c.error.peer]).toEqual([where, deviant]);
    const others = Array.from({ length: n }, (_, k) => k).filter((k) => k !== deviant);
    expect([where, c.error.message]).toEqual([where, expect.stringContaining(`rank ${deviant} called `)]);
    expect([where, c.error.message]).toEqual([where, expect.stringContaining(`ranks ${others.join(', ')} called `)]);
    expect([where, c.ms]).toEqual([where, expect.any(Number)]);
    expect(c.ms).toBeLessThan(10000); // not a timeout (60 s)
    expect([where, c.later.code]).toEqual([where, 'MICS_ABORTED']);
    expect(c.later.message).toMatch(/aborted/);
  }

  it.each([
    ['one node (shm)', undefined],
    ['2 emulated nodes (tcp)', 2],
  ])(
    'every rank gets MICS_MISMATCH naming both calls (op, count, dtype, reduction or root differ) and the deviating rank, and the communicator is aborted afterwards: %s',
    async (_label, nodes) => {
      const names = Object.keys(calls);
      const results = await runRanks({ n: 4, nodes, args: ['mismatch', JSON.stringify({ only: names })], timeoutMs: 60000 });
      for (const r of results) {
        if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(describeRanks(results));
        for (const name of names) expectMismatchNamed(r, name, 1, 4);
      }
      expectNothingLeft(results);
    },
    60000,
  );

  // Over TCP a rank sees only its left neighbour's call: the verdict needs every
  // rank's, so these put the deviant at either end of the ring and on its own node.
  it.each([
    ['one node (shm), rank 0 deviates', undefined, 0],
    ['2 emulated nodes (tcp), rank 0 deviates', 2, 0],
    ['2 emulated nodes (tcp), rank 3 deviates', 2, 3],
    ['3 emulated nodes (tcp, nodes 0, 1, 1, 2), rank 3 deviates', [0, 1, 1, 2], 3],
  ])('whichever rank deviates, every rank names that rank: %s', async (_label, nodes, deviant) => {
    const names = ['count', 'kind'];
    const results = await runRanks({ n: 4, nodes, args: ['mismatch', JSON.stringify({ only: names, deviant })], timeoutMs: 60000 });
    for (const r of results) {
      if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(describeRanks(results));
      for (const name of names) expectMismatchNamed(r, name, deviant, 4);
    }
    expectNothingLeft(results);
  }, 60000);
});

describe('mismatched calls when the deviating rank arrives late', () => {
  // Rank 1 calls broadcast(root=1) 500 ms after ranks 0, 2, 3 called broadcast(root=0):
  // rank 0 is a root with nothing to receive, yet its call must fail too.
  it.each([
    ['one node (shm)', undefined],
    ['2 emulated nodes x 2 ranks (tcp)', 2],
  ])('every rank, including the root that has nothing to receive, gets MICS_MISMATCH: %s', async (_label, nodes) => {
    const results = await runRanks({ n: 4, nodes, args: ['mismatch', JSON.stringify({ only: ['root'], deviantDelayMs: 500 })], timeoutMs: 60000 });
    for (const r of results) {
      if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(describeRanks(results));
      const where = `rank ${r.rank}: ${JSON.stringify(r.json.root)}`;
      expect([where, r.json.root.error?.code]).toEqual([where, 'MICS_MISMATCH']);
      expect([where, /root=1/.test(r.json.root.error.message) && /root=0/.test(r.json.root.error.message)]).toEqual([where, true]);
      expect([where, r.json.root.error.peer]).toEqual([where, 1]);
    }
    expectNothingLeft(results);
  }, 60000);
});

describe('timeouts', () => {
  // Over TCP only the silent rank's right neighbour sees that it never called; the
  // others, stuck inside the op, learn it by asking around the ring. The silent rank
  // sits at the end, in the middle, and at rank 0 of the ring.
  it.each([
    ['3 ranks on one node (shm), per-op timeoutMs', 3, undefined, 2, { perOp: 1500 }, 1500],
    ['2 emulated nodes x 2 ranks (tcp), per-op timeoutMs', 4, 2, 3, { perOp: 1500 }, 1500],
    ['2 emulated nodes x 2 ranks (tcp), rank 1 silent', 4, 2, 1, { perOp: 1500 }, 1500],
    ['3 emulated nodes (tcp, nodes 0, 0, 1, 2), rank 0 silent', 4, [0, 0, 1, 2], 0, { perOp: 1500 }, 1500],
    ['2 ranks on one node (shm), init({timeoutMs}) as the default', 2, undefined, 1, { initTimeoutMs: 2000 }, 2000],
  ])(
    'when one rank never calls, the others reject with MICS_TIMEOUT naming that rank after the timeout (not before it passed since the first call, and not much later), and later use says aborted: %s',
    async (_label, n, nodes, silent, options, timeoutMs) => {
      const results = await runRanks({ n, nodes, args: ['timeout', JSON.stringify({ silent, ...options })], timeoutMs: 60000 });
      for (const r of results) if (r.code !== 0 || !r.json || r.json.initError) throw new Error(describeRanks(results));
      // The first rank to call times out first, and every rank fails with it: a rank
      // that called later fails before its own timeout, but nobody before the first one's.
      const callers = results.filter((r) => r.rank !== silent);
      const firstCall = Math.min(...callers.map((r) => r.json.startedAt as number));
      const firstFailure = Math.min(...callers.map((r) => r.json.failedAt as number));
      expect(firstFailure - firstCall).toBeGreaterThanOrEqual(timeoutMs - 50);
      for (const r of results) {
        if (r.rank === silent) continue;
        const where = `rank ${r.rank}: ${JSON.stringify(r.json)}`;
        expect([where, r.json.error?.code]).toEqual([where, 'MICS_TIMEOUT']);
        expect([where, r.json.error.peer]).toEqual([where, silent]);
        expect(r.json.error.message).toMatch(new RegExp(`waiting for rank ${silent}\\b`));
        expect(r.json.error.message).toMatch(/timed out/);
        expect(r.json.error.message).toContain("'timing-out'");
        expect(r.json.error.message).toContain('allReduce');
        // Relayed from rank to rank, the error still names one reporter, not one per hop.
        expect([where, (r.json.error.message as string).split(' (reported by rank ').length <= 2]).toEqual([where, true]);
        expect(r.json.ms).toBeLessThan(timeoutMs + 8000);
        expect(r.json.later.code).toBe('MICS_ABORTED');
        expect(r.json.later.message).toMatch(/aborted/);
      }
      expectNothingLeft(results);
    },
    60000,
  );
});

describe('abort()', () => {
  async function abortRun(nodes: number | undefined): Promise<RankResult[]> {
    // Rank 0 aborts 500 ms after its peers entered an allReduce (timeout 30 s), then
    // keeps the process and its sockets alive for 9 s: only the abort can tell them.
    const results = await runRanks({
      n: 4,
      nodes,
      args: ['abort', JSON.stringify({ aborter: 0, delayMs: 500, holdMs: 9000, timeoutMs: 30000 })],
      timeoutMs: 60000,
    });
    for (const r of results) if (r.code !== 0 || !r.json || r.json.initError) throw new Error(describeRanks(results));
    const aborter = results[0].json;
    expect(aborter.later.code).toBe('MICS_ABORTED');
    expect(aborter.later.message).toMatch(/aborted.*stopping on purpose/);
    return results;
  }

  function expectPeersToldWithinSeconds(results: RankResult[]): void {
    const abortedAt = results[0].json.abortedAt as number;
    for (const r of results.slice(1)) {
      const where = `rank ${r.rank}: ${JSON.stringify(r.json)}`;
      expect([where, r.json.error?.code]).toEqual([where, 'MICS_ABORTED']);
      expect(r.json.error.message).toMatch(/rank 0\b/);
      expect(r.json.error.message).toContain('stopping on purpose');
      expect([where, r.json.failedAt - abortedAt < 5000]).toEqual([where, true]);
    }
  }

  it('over shared memory: peers waiting in an op reject with MICS_ABORTED naming the aborting rank and its reason, within seconds', async () => {
    expectPeersToldWithinSeconds(await abortRun(undefined));
  }, 60000);

  // Regression: abort() used to only wake the local progress thread on TCP; the
  // ABORT frames now go out from the progress thread (PropagateAbort).
  it('over the TCP ring (2 emulated nodes x 2 ranks): peers waiting in an op reject with MICS_ABORTED within seconds', async () => {
    expectPeersToldWithinSeconds(await abortRun(2));
  }, 60000);
});

describe('a peer is trusted only as far as it must be (docs/security.md)', () => {
  it('an allocHost region is mode 0600 and sealed: neither its owner nor a peer can shrink, grow or write it through the file, while the owner still writes it and peers still read it in place', async () => {
    const results = await runRanks({ n: 2, args: ['sealed'], timeoutMs: 30000 });
    for (const r of results) {
      if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(describeRanks(results));
      const where = `rank ${r.rank}: ${JSON.stringify(r.json)}`;
      expect([where, r.json.mode]).toEqual([where, 0o600]);
      expect([where, r.json.attempts]).toEqual([where, { shrink: 'EPERM', grow: 'EPERM', write: 'EPERM', size: 131072 }]);
      expect([where, r.json.gathered, r.json.directOps]).toEqual([where, [10, 11], 1]);
    }
    expectNothingLeft(results);
  }, 60000);

  it('a peer whose shared-memory segment has another size is refused at init, naming MICS_SHM_STAGING_BYTES', async () => {
    const results = await runRanks({
      n: 2,
      args: ['basic'],
      rankEnv: (rank) => (rank === 1 ? { MICS_SHM_STAGING_BYTES: '8192' } : {}),
      timeoutMs: 30000,
    });
    const where = describeRanks(results);
    // Rank 0 always maps rank 1's segment and refuses it.
    expect([where, results[0].code, results[0].json?.initError?.code]).toEqual([where, 3, 'MICS_INVALID_ARGUMENT']);
    expect(results[0].json.initError.message).toMatch(
      /rank 1 uses 8192 staging bytes \(a segment of 151552 bytes\) but rank 0 uses 1048576: set the same MICS_SHM_STAGING_BYTES on every rank/,
    );
    // Rank 1 fails init too: it refuses rank 0's segment, or finds it (or the store
    // rank 0 hosts) already gone, depending on how far rank 0 got first.
    expect([where, results[1].code, results[1].json?.initError?.code]).toEqual([where, 3, expect.stringMatching(/^MICS_/)]);
    expectNothingLeft(results);
  }, 60000);

  it.each([
    ['past the end of its region', 'past-end', /131072 bytes at offset 131068 of a region of 131072 bytes/],
    ['so large that offset + length wraps around', 'overflow', /131072 bytes at offset 18446744073709551600 of a region of 131072 bytes/],
  ])(
    'a peer that publishes a registered input %s is refused with MICS_INTERNAL naming it, instead of being read',
    async (_label, offset, detail) => {
      // Rank 1 forges its shared-memory control slot (through /proc/self/mem) to
      // "arrive" at rank 0's allReduce with a matching signature and a bad view.
      const results = await runRanks({ n: 2, args: ['rogueSlot', JSON.stringify({ forge: 'view', offset })], timeoutMs: 30000 });
      for (const r of results) if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(describeRanks(results));
      const err = results[0].json.error as ErrorInfo;
      expect(err).toEqual(
        expect.objectContaining({ code: 'MICS_INTERNAL', rank: 0, peer: 1, op: expect.stringContaining('allReduce') }),
      );
      expect(err.message).toMatch(/^rank 1 \(pid \d+\) published a malformed registered buffer/);
      expect(err.message).toMatch(detail);
      expectNothingLeft(results);
    },
    60000,
  );

  it.each([
    ['shared memory: a control slot marked aborted', 'rogueSlot', undefined, 'forged failure', 12345],
    ['TCP: an ABORT frame', 'rogueFrame', 2, 'forged abort frame', -7],
  ])(
    '%s with an error code and a culprit rank that do not exist is reported as MICS_ABORTED by that peer, saying the code was invalid',
    async (_label, scenario, nodes, text, code) => {
      const results = await runRanks({ n: 2, nodes, args: [scenario, JSON.stringify({ forge: 'abortCode' })], timeoutMs: 30000 });
      for (const r of results) if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(describeRanks(results));
      const err = results[0].json.error as ErrorInfo;
      expect(err).toEqual(expect.objectContaining({ code: 'MICS_ABORTED', rank: 0, peer: 1 }));
      expect(err.message).toContain(text);
      expect(err.message).toContain(`rank 1 sent an invalid error code ${code}`);
      expectNothingLeft(results);
    },
    60000,
  );
});

describe('rendezvous store token, end to end', () => {
  it('a rank with the wrong MICS_STORE_TOKEN fails init with MICS_STORE_AUTH naming the variable, and the store keeps serving the job', async () => {
    // Rank 0 starts and hosts the store; it waits in init for rank 1.
    const job = await startRanks({ n: 2, only: [0], args: ['basic'], timeoutMs: 60000 });
    // An impostor for rank 1 with the wrong token is turned away at once.
    const [impostor] = await runRanks({
      n: 2,
      only: [1],
      port: job.port,
      token: 'f'.repeat(64),
      args: ['basic'],
      timeoutMs: 30000,
    });
    expect(impostor.code).toBe(3);
    expect(impostor.json.initError.code).toBe('MICS_STORE_AUTH');
    expect(impostor.json.initError.message).toMatch(/token/);
    expect(impostor.json.initError.message).toContain('MICS_STORE_TOKEN');
    expect(impostor.stdout + impostor.stderr).not.toContain(job.token);
    // The real rank 1 joins the same store afterwards and the job completes.
    const [rank1] = await runRanks({ n: 2, only: [1], port: job.port, token: job.token, args: ['basic'], timeoutMs: 30000 });
    const [rank0] = await job.done;
    expect([rank0.json, rank1.json]).toEqual([
      expect.objectContaining({ rank: 0, sum: 3, transport: 'shm' }),
      expect.objectContaining({ rank: 1, sum: 3, transport: 'shm' }),
    ]);
    expectNothingLeft([rank0, rank1, impostor]);
  }, 60000);
});
