/**
 * Membership while a group forms: a connection registered as rank R of a scope that closes
 * before it unregisters fails every wait for a missing key under the scope with MICS_PEER_LOST
 * naming R, on every connection, at once; later waits and registrations there fail the same
 * way; keys that exist are still served, other scopes are untouched, and leaving after
 * unregister() (the group formed) or a closing server is nobody's loss. Real TCP on localhost;
 * one test loses the member by killing a real process.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { StoreClient, StoreServer } from '../../lib/store';
import { rejection } from '../helpers/errors';

const TOKEN = 'membership-test-token';
const SCOPE = 'mics/run/0';

let server: StoreServer;
const clients: StoreClient[] = [];

async function connect(): Promise<StoreClient> {
  const client = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN, timeoutMs: 30000 });
  clients.push(client);
  return client;
}

/** A client registered as `rank` of SCOPE (returns the scoped view). */
async function member(rank: number): Promise<StoreClient> {
  const view = (await connect()).withPrefix(SCOPE);
  await view.register(rank);
  return view;
}

beforeEach(async () => {
  server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server.close();
});

describe('a registered member that disconnects before the group formed', () => {
  it('fails the pending waits of every other connection on missing keys of the scope with MICS_PEER_LOST naming it', async () => {
    const [r0, r1, r2] = [await member(0), await member(1), await member(2)];
    await r0.set('node/0', 'a');
    await r1.set('node/1', 'b');
    const t0 = Date.now();
    const pending = [
      rejection(r0.multiGet(['node/0', 'node/1', 'node/2'])),
      rejection(r1.get('node/2')),
      rejection(r1.wait(['node/2'])),
    ];
    r2.close();
    for (const err of await Promise.all(pending)) {
      expect(err.code).toBe('MICS_PEER_LOST');
      expect(err.peer).toBe(2);
      expect(err.message).toMatch(/rank 2 lost its connection to the store before its group under "mics\/run\/0" had formed/);
      expect(err.message).toMatch(/store 127\.0\.0\.1:\d+/);
    }
    // The waits were for 30 s: this is the disconnect, not a timeout.
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('fails later waits on missing keys and later registrations at once, but still serves keys that exist', async () => {
    const [r0, r1] = [await member(0), await member(1)];
    await r0.set('node/0', 'a');
    r1.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const late = await connect();
    const err = await rejection(late.withPrefix(SCOPE).get('node/1', 30000));
    expect([err.code, err.peer]).toEqual(['MICS_PEER_LOST', 1]);
    expect((await late.withPrefix(SCOPE).get('node/0', 0)).toString()).toBe('a');
    const again = await rejection(late.withPrefix(SCOPE).register(3));
    expect([again.code, again.peer]).toEqual(['MICS_PEER_LOST', 1]);
  });

  it('leaves other scopes and keys outside the scope alone', async () => {
    const r0 = await member(0);
    const other = (await connect()).withPrefix('mics/run/1');
    await other.register(0);
    const outside = await connect();
    const waitOther = other.get('late', 30000);
    const waitOutside = outside.get('mics/run/0-not-in-scope', 30000);
    r0.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await outside.set('mics/run/0-not-in-scope', 'x');
    await other.set('late', 'y');
    expect((await waitOutside).toString()).toBe('x');
    expect((await waitOther).toString()).toBe('y');
  });

  it('is noticed when the member process is killed with SIGKILL', async () => {
    const r0 = await member(0);
    const code = `
      const { StoreClient } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'dist', 'store'))});
      StoreClient.connect({ host: '127.0.0.1', port: ${server.port}, token: ${JSON.stringify(TOKEN)} })
        .then((c) => c.withPrefix(${JSON.stringify(SCOPE)}).register(5))
        .then(() => { process.stdout.write('registered\\n'); setInterval(() => undefined, 1000); });`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('registered') && resolve());
        child.once('exit', () => reject(new Error('the member process exited before it registered')));
      });
      const waiting = rejection(r0.get('addr/5'));
      child.kill('SIGKILL');
      const err = await waiting;
      expect([err.code, err.peer]).toEqual(['MICS_PEER_LOST', 5]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('leaving without loss', () => {
  it('a member that unregistered (its group formed) can leave: waits go on until their keys come', async () => {
    const [r0, r1] = [await member(0), await member(1)];
    await r1.unregister();
    const waiting = r0.get('split0/1', 30000);
    r1.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await (await connect()).withPrefix(SCOPE).set('split0/1', 'z');
    expect((await waiting).toString()).toBe('z');
  });

  it('a closing server answers MICS_STORE_CLOSED, not a lost member', async () => {
    const r0 = await member(0);
    await member(1);
    const waiting = rejection(r0.get('node/1'));
    await server.close();
    expect((await waiting).code).toBe('MICS_STORE_CLOSED');
  });
});

describe('registration', () => {
  it('refuses a rank another live connection registered (two processes with the same RANK), and a second rank on one connection', async () => {
    await member(1);
    const twin = (await connect()).withPrefix(SCOPE);
    const err = await rejection(twin.register(1));
    expect(err.code).toBe('MICS_INVALID_ARGUMENT');
    expect(err.message).toMatch(/another connection already registered as rank 1 \(two processes started with the same rank\?\)/);
    await twin.register(2);
    await twin.register(2); // idempotent
    expect((await rejection(twin.register(3))).message).toMatch(/this connection already registered as rank 2/);
  });

  it('needs a prefix view and a rank that fits the wire, checked before anything is sent', async () => {
    const root = await connect();
    expect((await rejection(root.register(0))).message).toMatch(/register: call it on a prefix view/);
    expect((await rejection(root.unregister())).message).toMatch(/unregister: call it on a prefix view/);
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 32, '3' as unknown as number]) {
      const err = await rejection(root.withPrefix(SCOPE).register(bad));
      expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(/register: rank must be an integer in 0\.\.4294967295/)]);
    }
  });
});
