/**
 * The ncclConfig_t we pass: the 2.18 layout (size 48), whose version we pass, not the
 * library's. NCCL copies min(size, its own sizeof) bytes and then resets every field
 * newer than `version` to its default, so with the library's version a 2.26+ NCCL
 * would read `trafficClass` (offset 44, padding in our layout) as whatever is there.
 * The bytes come from the addon (addon.ncclConfig(), built in every variant) and are
 * read here the way NCCL 2.30's parseCommConfig reads them.
 */
import { loadAddon } from '../../lib/core/native';

const UNDEF = -2147483648; // NCCL_CONFIG_UNDEF_INT
const NCCL_VERSION = (x: number, y: number, z: number) => x * 10000 + y * 100 + z;

// ncclConfig_v23000 (NCCL 2.30, src/nccl.h.in): name, offset, kind, the release that added it.
const nccl230: [string, number, 'size' | 'u32' | 'i32' | 'ptr', number][] = [
  ['size', 0, 'size', 0], ['magic', 8, 'u32', 0], ['version', 12, 'u32', 0],
  ['blocking', 16, 'i32', NCCL_VERSION(2, 14, 0)], ['cgaClusterSize', 20, 'i32', NCCL_VERSION(2, 17, 0)],
  ['minCTAs', 24, 'i32', NCCL_VERSION(2, 17, 0)], ['maxCTAs', 28, 'i32', NCCL_VERSION(2, 17, 0)],
  ['netName', 32, 'ptr', NCCL_VERSION(2, 17, 0)], ['splitShare', 40, 'i32', 0],
  ['trafficClass', 44, 'i32', NCCL_VERSION(2, 25, 0)], ['commName', 48, 'ptr', 0],
];
const nccl230Size = 104; // sizeof(ncclConfig_v23000)

/** What NCCL 2.30's parseCommConfig makes of our bytes: copy min(size, 104), then default fields newer than `version`. */
function asNccl230Reads(bytes: Uint8Array): Record<string, number | bigint> {
  const ours = Buffer.from(bytes);
  const size = Number(ours.readBigUInt64LE(0));
  const mem = Buffer.alloc(nccl230Size);
  // NCCL_CONFIG_INITIALIZER first (undefined ints, null pointers), then our bytes on top.
  for (const [, off, kind] of nccl230) if (kind === 'i32') mem.writeInt32LE(UNDEF, off);
  ours.copy(mem, 0, 0, Math.min(size, nccl230Size));
  const version = mem.readUInt32LE(12);
  const out: Record<string, number | bigint> = {};
  for (const [name, off, kind, since] of nccl230) {
    const defaulted = since > 0 && version < since;
    if (kind === 'size') out[name] = mem.readBigUInt64LE(off);
    else if (kind === 'u32') out[name] = mem.readUInt32LE(off);
    else if (kind === 'ptr') out[name] = defaulted ? 0n : mem.readBigUInt64LE(off);
    else out[name] = defaulted ? UNDEF : mem.readInt32LE(off);
  }
  return out;
}

describe('ncclConfig_t', () => {
  const { layoutVersion, bytes } = loadAddon().addon.ncclConfig();

  it('is the 48-byte 2.18 layout and carries that layout version, not the loaded library version', () => {
    expect(bytes.length).toBe(48);
    expect(layoutVersion).toBe(NCCL_VERSION(2, 18, 0));
    const b = Buffer.from(bytes);
    expect(b.readBigUInt64LE(0)).toBe(48n);
    expect(b.readUInt32LE(8)).toBe(0xcafebeef);
    expect(b.readUInt32LE(12)).toBe(21800);
  });

  it('asks for a non-blocking communicator and leaves every other field to NCCL (undefined, null)', () => {
    const b = Buffer.from(bytes);
    expect([16, 20, 24, 28, 40].map((off) => b.readInt32LE(off))).toEqual([0, UNDEF, UNDEF, UNDEF, UNDEF]);
    expect(b.readBigUInt64LE(32)).toBe(0n); // netName
    expect(b.readUInt32LE(44)).toBe(0); // padding, zeroed
  });

  it('reads as intended by NCCL 2.30: trafficClass and newer fields keep their defaults', () => {
    expect(asNccl230Reads(bytes)).toEqual({
      size: 48n, magic: 0xcafebeef, version: 21800,
      blocking: 0, cgaClusterSize: UNDEF, minCTAs: UNDEF, maxCTAs: UNDEF, netName: 0n, splitShare: UNDEF,
      trafficClass: UNDEF, commName: 0n,
    });
    // The bug this guards against: the library's version (2.30) makes NCCL take trafficClass from our padding.
    const withLibraryVersion = Buffer.from(bytes);
    withLibraryVersion.writeUInt32LE(NCCL_VERSION(2, 30, 7), 12);
    expect(asNccl230Reads(withLibraryVersion).trafficClass).toBe(0);
  });
});
