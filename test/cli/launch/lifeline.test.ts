/**
 * The starter-agent protocol of a --hostfile start: JSON messages on the agent's standard input
 * (environment first, pings, forwarded signals, lost nodes), and the agent's report line.
 */
import { PassThrough } from 'node:stream';
import { decodeMessage, decodeReport, encodeMessage, encodeReport, Lifeline, type StarterMessage } from '../../../lib/cli/launch/lifeline';

function until(predicate: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error('timed out'));
      else setTimeout(poll, 10);
    };
    poll();
  });
}

describe('messages', () => {
  it('round-trip; malformed or unknown lines are ignored', () => {
    const all: StarterMessage[] = [
      { t: 'env', env: { FOO: '1', 'A B': 'x\ny' } },
      { t: 'ping' },
      { t: 'signal', signal: 'SIGINT', host: 'login1' },
      { t: 'lost', nodeRank: 2, host: 'n2', message: 'ssh ended', time: 5 },
    ];
    for (const m of all) expect(decodeMessage(encodeMessage(m).trimEnd())).toEqual(m);
    for (const bad of ['', 'hello', '{"t":"signal","signal":"SIGKILL","host":"h"}', '{"t":"env","env":{"A":1}}', '{"t":"lost","nodeRank":"1"}', '[1]']) {
      expect(decodeMessage(bad)).toBeUndefined();
    }
  });

  it('a report is one prefixed line; other lines are not reports', () => {
    const report = { nodeRank: 1, host: 'h', end: { kind: 'success' as const }, local: [], attempts: 1, worldSize: 4, code: 0 };
    const line = encodeReport(report);
    expect(line.endsWith('\n') && line.indexOf('\n') === line.length - 1).toBe(true);
    expect(decodeReport(line.trimEnd())).toEqual(report);
    expect(decodeReport('[rank 0] MICS_LAUNCH_REPORT {}')).toBeUndefined();
    expect(decodeReport('MICS_LAUNCH_REPORT not json')).toBeUndefined();
  });
});

describe('Lifeline', () => {
  it('gives the environment, then hands over signals and lost nodes (also those sent before attach)', async () => {
    const input = new PassThrough();
    const l = new Lifeline(input, 5000);
    input.write(encodeMessage({ t: 'env', env: { FOO: '1' } }));
    expect(await l.environment()).toEqual({ FOO: '1' });
    input.write(encodeMessage({ t: 'signal', signal: 'SIGTERM', host: 's' }));
    input.write('{"t":"ping"}\n{"t":"lo');
    await new Promise((r) => setTimeout(r, 20));
    const got: StarterMessage[] = [];
    l.attach((m) => got.push(m), () => undefined);
    input.write('st","nodeRank":1,"host":"h","message":"m","time":1}\n');
    await until(() => got.length === 2);
    expect(got.map((m) => m.t)).toEqual(['signal', 'lost']);
    l.close();
  });

  it('reports the starter lost when the input closes, and when it falls silent', async () => {
    const closed = new PassThrough();
    const a = new Lifeline(closed, 5000);
    const lossA: string[] = [];
    a.attach(() => undefined, (why) => lossA.push(why));
    closed.end();
    await until(() => lossA.length === 1);
    expect(lossA).toEqual(['closed']);
    expect(await a.environment()).toBeUndefined();

    const silent = new PassThrough();
    const b = new Lifeline(silent, 300);
    const lossB: string[] = [];
    b.attach(() => undefined, (why) => lossB.push(why));
    const pinger = setInterval(() => silent.write(encodeMessage({ t: 'ping' })), 50);
    await new Promise((r) => setTimeout(r, 600));
    expect(lossB).toEqual([]); // pings keep it alive
    clearInterval(pinger);
    await until(() => lossB.length === 1);
    expect(lossB).toEqual(['silent']);
    b.close();
  });

  it('after close(), nothing more is reported', async () => {
    const input = new PassThrough();
    const l = new Lifeline(input, 5000);
    const events: string[] = [];
    l.attach((m) => events.push(m.t), (why) => events.push(why));
    l.close();
    await new Promise((r) => setTimeout(r, 30));
    expect(events).toEqual([]);
  });
});
