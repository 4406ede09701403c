/**
 * Starting, stopping and losing things: connect retries, closes on either side, a
 * server that dies or goes silent, and clients in separate real processes (which also
 * proves no timer or socket keeps a process alive once it is done).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { StoreClient, StoreServer } from '../../lib/store';
import { BodyReader, BodyWriter, FrameDecoder, MAGIC, Op, PROTOCOL_VERSION, Status, authProof } from '../../lib/store/protocol';
import { rejection } from '../helpers/errors';
import { freePort } from '../helpers/ranks';

const TOKEN = 'lifecycle-token-7d2e';
const repoRoot = path.resolve(__dirname, '..', '..');


/** Rejects if `promise` has not settled within `ms` (so a hang fails fast, with a reason). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function listen(server: net.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('closing', () => {
  it('server.close() rejects pending gets with MICS_STORE_CLOSED and resolves', async () => {
    const server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
    const client = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN });
    const get = rejection(client.get('never'));
    const wait = rejection(client.wait(['never', 'either']));
    const multi = rejection(client.withPrefix('g').multiGet(['x']));
    await client.check(['never']); // the three are registered on the server by now
    const closing = server.close();
    expect(server.close()).toBe(closing);
    for (const err of await within(Promise.all([get, wait, multi]), 5000, 'rejecting pending requests')) {
      expect(err.code).toBe('MICS_STORE_CLOSED');
      expect(err.message).toMatch(/closing/);
      expect(err.message).toContain(`127.0.0.1:${server.port}`);
    }
    expect((await get).message).toMatch(/^get\("never"\)/);
    await within(closing, 5000, 'server.close()');
    const after = await rejection(client.set('k', 'v'));
    expect(after.code).toBe('MICS_STORE_CLOSED');
    client.close();
  });

  it('a closed server accepts no new clients', async () => {
    const server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
    await server.close();
    const err = await rejection(StoreClient.connect({ host: '127.0.0.1', port: server.port, token: TOKEN, connectTimeoutMs: 300 }));
    expect(err.code).toBe('MICS_TIMEOUT');
  });

  it('client.close() rejects its pending requests and leaves the server serving others', async () => {
    const server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
    try {
      const a = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN });
      const b = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN });
      const pending = rejection(a.get('k'));
      const pendingView = rejection(a.withPrefix('p').wait(['k']));
      a.close();
      a.close(); // idempotent
      const [err, errView] = await Promise.all([pending, pendingView]);
      expect(err.code).toBe('MICS_STORE_CLOSED');
      expect(err.message).toMatch(/^get\("k"\): the client for the store at 127\.0\.0\.1:\d+ was closed/);
      expect(errView.message).toMatch(/^wait\("p\/k"\)/);
      expect((await rejection(a.add('n', 1))).code).toBe('MICS_STORE_CLOSED');
      await b.set('k', 'v');
      expect((await b.get('k')).toString()).toBe('v');
      b.close();
    } finally {
      await server.close();
    }
  });
});

describe('connecting', () => {
  it('retries while the port refuses, then connects once the server is up', async () => {
    // A stand-in that drops every connection, so the client's retries are observable.
    const port = await freePort();
    let attempts = 0;
    let sawRetries: () => void = () => undefined;
    const retried = new Promise<void>((resolve) => (sawRetries = resolve));
    const standIn = net.createServer((socket) => {
      socket.destroy();
      if (++attempts === 3) sawRetries();
    });
    await listen(standIn, port);
    const connecting = StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN, connectTimeoutMs: 20000 });
    await within(retried, 10000, 'three connection attempts');
    await closeServer(standIn);
    const server = await StoreServer.start({ host: '127.0.0.1', port, token: TOKEN });
    try {
      const client = await within(connecting, 10000, 'connect after the server came up');
      await client.set('k', 'v');
      client.close();
    } finally {
      await server.close();
    }
  });

  it('gives up after connectTimeoutMs naming host:port and the last error', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await rejection(StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN, connectTimeoutMs: 400 }));
    const elapsed = Date.now() - started;
    expect(err.code).toBe('MICS_TIMEOUT');
    expect(err.message).toContain(`could not connect to the store at 127.0.0.1:${port} within 400 ms`);
    expect(err.message).toContain('ECONNREFUSED');
    expect(elapsed).toBeGreaterThanOrEqual(390);
    expect(elapsed).toBeLessThan(3000);
  });

  it('gives up on a peer that accepts but never greets', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    const sockets: net.Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    const port = await listen(silent);
    try {
      const err = await rejection(StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN, connectTimeoutMs: 300 }));
      expect(err.code).toBe('MICS_TIMEOUT');
      expect(err.message).toContain(`127.0.0.1:${port}`);
    } finally {
      for (const s of sockets) s.destroy();
      await closeServer(silent);
    }
  });
});

describe('a server that stops answering', () => {
  it('fails requests at the client-side deadline and cancels them on the server', async () => {
    // Authenticates like a store, then reads requests and never answers them.
    const received: number[] = [];
    let sawCancel: () => void = () => undefined;
    const cancelled = new Promise<void>((resolve) => (sawCancel = resolve));
    const mute = net.createServer((socket) => {
      socket.on('error', () => undefined);
      const nonce = crypto.randomBytes(32);
      const decoder = new FrameDecoder(1 << 20);
      socket.write(new BodyWriter().u8(Op.Hello).u32(0).raw(MAGIC).u8(PROTOCOL_VERSION).raw(nonce).u32(1 << 20).toFrame());
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk);
        for (let body = decoder.next(); body !== undefined; body = decoder.next()) {
          const r = new BodyReader(body);
          const op = r.u8();
          r.u32();
          received.push(op);
          if (op === Op.Cancel) sawCancel();
          if (op !== Op.Auth) continue;
          r.u8();
          const clientNonce = r.raw(32);
          const proof = authProof(TOKEN, 'server', nonce, clientNonce);
          socket.write(new BodyWriter().u8(Op.AuthResult).u32(0).u8(Status.Ok).raw(proof).toFrame());
        }
      });
    });
    const port = await listen(mute);
    const client = await StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN, timeoutMs: 0 });
    try {
      const started = Date.now();
      const err = await rejection(client.set('k', 'v'));
      expect(err.code).toBe('MICS_TIMEOUT');
      expect(err.message).toBe(`set("k"): no reply from the store at 127.0.0.1:${port} within 5000 ms`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(4990);
      await within(cancelled, 5000, 'the cancel frame');
      expect(received).toEqual([Op.Auth, Op.Set, Op.Cancel]);
    } finally {
      client.close();
      await closeServer(mute);
    }
  });
});

describe('separate processes', () => {
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-store-test-'));
    const storeModule = JSON.stringify(path.join(repoRoot, 'lib', 'store'));
    // A rank: joins, reports, blocks on 'go', answers, hits a timeout, and then must
    // exit on its own (no process.exit), closed or not.
    fs.writeFileSync(
      path.join(dir, 'rank.ts'),
      `import { StoreClient } from ${storeModule};
const env = process.env;
(async () => {
  try {
    const c = await StoreClient.connect({ host: env.STORE_HOST!, port: Number(env.STORE_PORT), token: env.STORE_TOKEN!, connectTimeoutMs: 20000 });
    const me = await c.add('arrivals', 1);
    const g = c.withPrefix('rank' + me);
    await g.set('ready', String(process.pid));
    const go = await c.get('go');
    try { await c.get('never', 100); } catch (e) { await g.set('timeout', (e as { code: string }).code); }
    await g.set('done', go.toString() + ' ack');
    if (env.CLOSE_CLIENT === '1') c.close();
  } catch (e) {
    const err = e as { code?: string; message: string };
    process.stdout.write(JSON.stringify({ code: err.code, message: err.message }));
    process.exitCode = 1;
  }
})();
`,
    );
    fs.writeFileSync(
      path.join(dir, 'server.ts'),
      `import { StoreServer } from ${storeModule};
StoreServer.start({ host: '127.0.0.1', port: 0, token: process.env.STORE_TOKEN! }).then((s) => process.stdout.write(s.port + '\\n'));
`,
    );
  });

  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  interface Child {
    process: ChildProcess;
    output: () => string;
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  }

  function runTs(script: string, env: Record<string, string>): Child {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(dir, script)], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    return { process: child, output: () => output, exited };
  }

  it('ranks in other processes rendezvous through the store and exit on their own', async () => {
    const server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
    const env = { STORE_HOST: server.host, STORE_PORT: String(server.port), STORE_TOKEN: TOKEN };
    const children = [
      runTs('rank.ts', { ...env, CLOSE_CLIENT: '1' }),
      runTs('rank.ts', { ...env, CLOSE_CLIENT: '1' }),
      runTs('rank.ts', { ...env, CLOSE_CLIENT: '0' }), // forgets close(): must still exit
    ];
    const parent = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN });
    try {
      await parent.wait(['rank1/ready', 'rank2/ready', 'rank3/ready'], 60000);
      const pids = (await parent.multiGet(['rank1/ready', 'rank2/ready', 'rank3/ready'])).map(Number);
      expect(new Set(pids)).toEqual(new Set(children.map((c) => c.process.pid)));
      await parent.set('go', 'hello');
      const done = await parent.multiGet(['rank1/done', 'rank2/done', 'rank3/done'], 30000);
      expect(done.map(String)).toEqual(['hello ack', 'hello ack', 'hello ack']);
      expect((await parent.multiGet(['rank1/timeout', 'rank2/timeout', 'rank3/timeout'])).map(String)).toEqual([
        'MICS_TIMEOUT',
        'MICS_TIMEOUT',
        'MICS_TIMEOUT',
      ]);
      // Each child had a 300 s default deadline on every request: a leaked timer or a
      // referenced idle socket would hold it far longer than this.
      for (const child of children) {
        const exit = await within(child.exited, 15000, `rank pid ${child.process.pid} exiting (output: ${child.output()})`);
        expect(exit).toEqual({ code: 0, signal: null });
      }
    } finally {
      for (const child of children) child.process.kill('SIGKILL');
      parent.close();
      await server.close();
    }
  });

  it('a process with the wrong token gets MICS_STORE_AUTH and no data, and nothing shows the token', async () => {
    const server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
    const child = runTs('rank.ts', { STORE_HOST: server.host, STORE_PORT: String(server.port), STORE_TOKEN: 'not-the-token-41ab' });
    try {
      const exit = await within(child.exited, 30000, 'the wrong-token rank exiting');
      expect(exit.code).toBe(1);
      const report = JSON.parse(child.output()) as { code: string; message: string };
      expect(report.code).toBe('MICS_STORE_AUTH');
      expect(report.message).toContain(`127.0.0.1:${server.port}`);
      expect(child.output()).not.toContain('not-the-token-41ab');
      expect(child.output()).not.toContain(TOKEN);
      const check = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN });
      expect(await check.numKeys()).toBe(0);
      check.close();
    } finally {
      child.process.kill('SIGKILL');
      await server.close();
    }
  });

  it('a store process that dies rejects every pending request at once', async () => {
    const host = runTs('server.ts', { STORE_TOKEN: TOKEN });
    try {
      const port = await within(
        new Promise<number>((resolve) => host.process.stdout?.on('data', () => {
          const line = host.output().split('\n')[0];
          if (host.output().includes('\n')) resolve(Number(line));
        })),
        30000,
        'the store process reporting its port',
      );
      const client = await StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN });
      const pending = [client.get('never'), client.wait(['never']), client.withPrefix('g').multiGet(['never'])].map((p) =>
        rejection(p),
      );
      await client.check(['never']); // all three are waiting on the server now
      host.process.kill('SIGKILL');
      const errors = await within(Promise.all(pending), 5000, 'rejection after the store died');
      for (const err of errors) {
        expect(err.code).toBe('MICS_STORE_CLOSED');
        expect(err.message).toContain(`the connection to the store at 127.0.0.1:${port} was lost`);
      }
      expect((await rejection(client.set('k', 'v'))).code).toBe('MICS_STORE_CLOSED');
      client.close();
    } finally {
      host.process.kill('SIGKILL');
      await host.exited;
    }
  });
});
