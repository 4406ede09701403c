/**
 * Authentication and hostile peers: only token holders read or write, and a bad
 * connection is closed alone while the server keeps serving everyone else.
 * Raw sockets speak the wire format by hand (protocol.ts) to do what our client never would.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { MicsError } from '../../lib/core/errors';
import { StoreClient, StoreServer } from '../../lib/store';
import {
  BodyReader,
  BodyWriter,
  FrameDecoder,
  MAGIC,
  NONCE_BYTES,
  Op,
  PROTOCOL_VERSION,
  Status,
  authProof,
} from '../../lib/store/protocol';

const TOKEN = 'the-right-token-5f1c0a';
const WRONG = 'a-wrong-token-93be77';

/** A hand-driven connection: sends whatever bytes, reads frames, notices the close. */
class RawPeer {
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private readonly frames: Buffer[] = [];
  private readonly waiting: { resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        for (const w of this.waiting.splice(0)) w.reject(new Error('closed before the frame arrived'));
        resolve();
      }),
    );
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let body = this.decoder.next(); body !== undefined; body = this.decoder.next()) {
        const w = this.waiting.shift();
        if (w) w.resolve(body);
        else this.frames.push(body);
      }
    });
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  nextFrame(): Promise<BodyReader> {
    const ready = this.frames.shift();
    if (ready) return Promise.resolve(new BodyReader(ready));
    if (this.isClosed) return Promise.reject(new Error('closed'));
    return new Promise<Buffer>((resolve, reject) => this.waiting.push({ resolve, reject })).then((b) => new BodyReader(b));
  }

  /** Reads the greeting and answers it with a proof made from `token`; `extra` rides in the same write. */
  async sendAuth(token: string, extra: Buffer = Buffer.alloc(0)): Promise<void> {
    const hello = await this.nextFrame();
    expect(hello.u8()).toBe(Op.Hello);
    hello.u32();
    expect(hello.raw(MAGIC.length).equals(MAGIC)).toBe(true);
    expect(hello.u8()).toBe(PROTOCOL_VERSION);
    const serverNonce = hello.raw(NONCE_BYTES);
    hello.u32();
    const clientNonce = crypto.randomBytes(NONCE_BYTES);
    const proof = authProof(token, 'client', serverNonce, clientNonce);
    const auth = new BodyWriter().u8(Op.Auth).u32(0).u8(PROTOCOL_VERSION).raw(clientNonce).raw(proof).toFrame();
    this.socket.write(Buffer.concat([auth, extra]));
  }

  /** Authenticates and returns the auth result's status. */
  async authenticate(token: string, extra?: Buffer): Promise<number> {
    await this.sendAuth(token, extra);
    const result = await this.nextFrame();
    expect(result.u8()).toBe(Op.AuthResult);
    result.u32();
    return result.u8();
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Resolves when the server has closed `peer`, fails after 5 s. The server's
 * authTimeoutMs is far longer, so a close in time is the rule under test acting.
 */
async function closedPromptly(peer: RawPeer): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the server did not close the connection within 5 s')), 5000);
  });
  try {
    await Promise.race([peer.closed, late]);
  } finally {
    clearTimeout(timer);
  }
}

function setFrame(id: number, key: string, value: string): Buffer {
  return new BodyWriter().u8(Op.Set).u32(id).string(key).bytes(Buffer.from(value)).toFrame();
}

let server: StoreServer;
let good: StoreClient;
const peers: RawPeer[] = [];

async function rawPeer(port = server.port): Promise<RawPeer> {
  const peer = await RawPeer.connect(port);
  peers.push(peer);
  return peer;
}

/** The server still serves a well-behaved client, including one waiting across the incident. */
async function expectServerHealthy(): Promise<void> {
  const other = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN });
  try {
    await other.set('health', 'ok');
    expect((await good.get('health', 1000)).toString()).toBe('ok');
    await good.delete('health');
  } finally {
    other.close();
  }
}

beforeEach(async () => {
  server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN, maxFrameBytes: 64 * 1024, authTimeoutMs: 60000 });
  good = await StoreClient.connect({ host: server.host, port: server.port, token: TOKEN });
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  good.close();
  await server.close();
});

describe('authentication', () => {
  it('a client with the wrong token is refused with MICS_STORE_AUTH, and the token is not echoed', async () => {
    let err: unknown;
    try {
      await StoreClient.connect({ host: server.host, port: server.port, token: WRONG, connectTimeoutMs: 5000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MicsError);
    expect((err as MicsError).code).toBe('MICS_STORE_AUTH');
    expect((err as MicsError).message).toContain(`127.0.0.1:${server.port}`);
    expect((err as MicsError).message).not.toContain(WRONG);
    expect((err as MicsError).message).not.toContain(TOKEN);
    await expectServerHealthy();
  });

  it('the raw helper can write with the right token (so the refusals below are meaningful)', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    peer.write(setFrame(7, 'raw-key', 'raw-value'));
    const reply = await peer.nextFrame();
    expect([reply.u8(), reply.u32(), reply.u8()]).toEqual([Op.Response, 7, Status.Ok]);
    expect((await good.get('raw-key', 0)).toString()).toBe('raw-value');
  });

  it('a wrong proof is refused and a write pipelined behind it is not applied', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(WRONG, setFrame(1, 'intruder', 'x'))).toBe(Status.Auth);
    await closedPromptly(peer);
    expect(await good.check(['intruder'])).toBe(false);
    expect(await good.numKeys()).toBe(0);
    await expectServerHealthy();
  });

  it('a request sent instead of authenticating closes the connection unanswered', async () => {
    const peer = await rawPeer();
    await peer.nextFrame(); // the greeting
    peer.write(setFrame(1, 'intruder', 'x'));
    await closedPromptly(peer);
    expect(await good.check(['intruder'])).toBe(false);
  });

  it('a read without authenticating gets nothing back', async () => {
    await good.set('secret', 'value');
    const peer = await rawPeer();
    await peer.nextFrame();
    peer.write(new BodyWriter().u8(Op.Get).u32(1).u32(0).string('secret').toFrame());
    await closedPromptly(peer);
    await expect(peer.nextFrame()).rejects.toThrow('closed');
  });

  it('a connection that never authenticates is closed after authTimeoutMs', async () => {
    const strict = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN, authTimeoutMs: 300 });
    try {
      const started = Date.now();
      const idle = await rawPeer(strict.port);
      await idle.closed;
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      const client = await StoreClient.connect({ host: strict.host, port: strict.port, token: TOKEN });
      await client.set('k', 'v');
      client.close();
    } finally {
      await strict.close();
    }
  });

  it('an authenticated connection is not closed by the auth deadline', async () => {
    const strict = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN, authTimeoutMs: 100 });
    const client = await StoreClient.connect({ host: strict.host, port: strict.port, token: TOKEN });
    try {
      // No event marks "the deadline passed without closing us": outwait it by a margin.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await client.set('k', 'v');
      expect((await client.get('k')).toString()).toBe('v');
    } finally {
      client.close();
      await strict.close();
    }
  });

  it('never puts the token on the wire, in either direction', async () => {
    const seen: Buffer[] = [];
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect({ host: server.host, port: server.port });
      inbound.on('data', (b: Buffer) => seen.push(b));
      outbound.on('data', (b: Buffer) => seen.push(b));
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as net.AddressInfo).port;
    try {
      const client = await StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN });
      await client.set('k', 'v');
      expect((await client.get('k')).toString()).toBe('v');
      client.close();
      await expect(StoreClient.connect({ host: '127.0.0.1', port, token: WRONG })).rejects.toMatchObject({
        code: 'MICS_STORE_AUTH',
      });
      const wire = Buffer.concat(seen);
      expect(wire.length).toBeGreaterThan(0);
      expect(wire.includes(Buffer.from('k'))).toBe(true);
      expect(wire.includes(Buffer.from(TOKEN))).toBe(false);
      expect(wire.includes(Buffer.from(WRONG))).toBe(false);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('the client refuses a server that cannot prove it knows the token', async () => {
    const impostor = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.write(
        new BodyWriter().u8(Op.Hello).u32(0).raw(MAGIC).u8(PROTOCOL_VERSION).raw(crypto.randomBytes(32)).u32(1 << 20).toFrame(),
      );
      socket.once('data', () =>
        socket.write(new BodyWriter().u8(Op.AuthResult).u32(0).u8(Status.Ok).raw(crypto.randomBytes(32)).toFrame()),
      );
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as net.AddressInfo).port;
    try {
      await expect(StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN })).rejects.toMatchObject({
        code: 'MICS_STORE_AUTH',
        message: expect.stringMatching(/could not prove it knows the token/),
      });
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
    }
  });

  it('the client says so when the port is some other service', async () => {
    const other = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const port = (other.address() as net.AddressInfo).port;
    try {
      await expect(StoreClient.connect({ host: '127.0.0.1', port, token: TOKEN })).rejects.toMatchObject({
        code: 'MICS_STORE_AUTH',
        message: expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:${port} does not speak the mics store protocol`)),
      });
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('logs nothing while refusing peers', async () => {
    const spies = [
      jest.spyOn(console, 'log'),
      jest.spyOn(console, 'warn'),
      jest.spyOn(console, 'error'),
      jest.spyOn(process.stderr, 'write'),
    ];
    try {
      const peer = await rawPeer();
      expect(await peer.authenticate(WRONG)).toBe(Status.Auth);
      await closedPromptly(peer);
      await expect(StoreClient.connect({ host: server.host, port: server.port, token: WRONG })).rejects.toThrow();
      for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });
});

describe('hostile bytes close only that connection', () => {
  it('garbage before authenticating', async () => {
    const waiting = good.get('after-garbage');
    const peer = await rawPeer();
    peer.write(Buffer.from('GET / HTTP/1.1\r\nHost: store\r\n\r\n'));
    await closedPromptly(peer); // 'GET ' read as a length is far over the handshake limit
    await good.set('after-garbage', 'fine');
    expect((await waiting).toString()).toBe('fine');
    await expectServerHealthy();
  });

  it('a well-framed but meaningless first frame', async () => {
    const peer = await rawPeer();
    peer.write(Buffer.from([0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]));
    await closedPromptly(peer);
    await expectServerHealthy();
  });

  it('an oversized frame before authenticating is refused from its length alone', async () => {
    const peer = await rawPeer();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(100000);
    peer.write(header); // no body follows: the server must not wait for 100 kB
    await closedPromptly(peer);
    await expectServerHealthy();
  });

  it('an oversized frame after authenticating', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(64 * 1024 + 1);
    peer.write(header);
    await closedPromptly(peer);
    await expectServerHealthy();
  });

  it('a frame of exactly maxFrameBytes is accepted', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    const key = 'exact';
    const overhead = 1 + 4 + 4 + key.length + 4;
    peer.write(setFrame(3, key, 'x'.repeat(64 * 1024 - overhead)));
    const reply = await peer.nextFrame();
    expect([reply.u8(), reply.u32(), reply.u8()]).toEqual([Op.Response, 3, Status.Ok]);
    expect((await good.get(key, 0)).length).toBe(64 * 1024 - overhead);
  });

  it('garbage after authenticating: unknown op', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    peer.write(new BodyWriter().u8(0x7e).u32(1).toFrame());
    await closedPromptly(peer);
    await expectServerHealthy();
  });

  it('garbage after authenticating: a field longer than its frame', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    peer.write(new BodyWriter().u8(Op.Set).u32(1).u32(5000).raw(Buffer.from('short')).toFrame());
    await closedPromptly(peer);
    expect(await good.numKeys()).toBe(0);
    await expectServerHealthy();
  });

  it('garbage after authenticating: trailing bytes', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    peer.write(new BodyWriter().u8(Op.Delete).u32(1).string('k').raw(Buffer.from([1, 2, 3])).toFrame());
    await closedPromptly(peer);
    await expectServerHealthy();
  });

  it('a huge element count is refused before any allocation', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    peer.write(new BodyWriter().u8(Op.Check).u32(1).u32(0xffffffff).toFrame());
    await closedPromptly(peer);
    await expectServerHealthy();
  });

  it('an empty key from a raw client is an error reply, not a crash', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    peer.write(setFrame(9, '', 'v'));
    const reply = await peer.nextFrame();
    expect([reply.u8(), reply.u32(), reply.u8()]).toEqual([Op.Response, 9, Status.InvalidArgument]);
    expect(reply.string()).toMatch(/non-empty/);
    await expectServerHealthy();
  });

  it('a peer that resets mid-frame', async () => {
    const peer = await rawPeer();
    expect(await peer.authenticate(TOKEN)).toBe(Status.Ok);
    peer.write(setFrame(1, 'partial', 'value').subarray(0, 10));
    peer.socket.resetAndDestroy();
    await closedPromptly(peer);
    await expectServerHealthy();
    expect(await good.check(['partial'])).toBe(false);
  });
});
