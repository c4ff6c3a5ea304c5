import { describe, expect, it } from 'vitest';
import { gpuTarget } from '../../src/devices/mig-strategy.js';
import type { AdvertisedDevice } from '../../src/devices/resource-types.js';
import {
  preferInOrder,
  preferShares,
  preferWholeGpus,
  TopologyScores,
} from '../../src/plugin/preferred-allocation.js';
import { gpu, linkedInventory, uuidOf } from '../helpers/inventory.js';

const ids = (...indexes: number[]) => indexes.map(uuidOf);

describe('preferWholeGpus (NVLink/PCIe aware)', () => {
  // GPUs 0-1 and 4-7 are NVLinked with 12 links; 2 and 3 have no NVLink.
  const inventory = linkedInventory(8, (a, b) => (a !== 2 && a !== 3 && b !== 2 && b !== 3 ? 12 : 0));
  const scores = TopologyScores.of(inventory);

  it.each([
    {
      name: 'a pair behind one switch with NVLink',
      available: [0, 1, 2, 3],
      must: [],
      size: 2,
      want: [0, 1],
    },
    { name: 'NVLinked GPUs over PCIe neighbours', available: [1, 2, 3, 4], must: [], size: 2, want: [1, 4] },
    {
      name: 'must-include kept, best partner chosen',
      available: [0, 1, 2, 3],
      must: [2],
      size: 2,
      want: [2, 3],
    },
    {
      name: 'four of eight: one NUMA node, all NVLinked',
      available: [0, 1, 2, 3, 4, 5, 6, 7],
      must: [],
      size: 4,
      want: [4, 5, 6, 7],
    },
    { name: 'size larger than offered: all offered', available: [0, 1], must: [], size: 3, want: [0, 1] },
  ])('$name', ({ available, must, size, want }) => {
    const result = preferWholeGpus({ available: ids(...available), mustInclude: ids(...must), size }, scores);
    expect(result).toEqual(ids(...want));
  });

  it('never fails on an ID it does not know (a GPU lost since): it just scores it 0', () => {
    const result = preferWholeGpus(
      { available: ['GPU-lost', ...ids(4, 5)], mustInclude: [], size: 2 },
      scores,
    );
    expect(result).toEqual(ids(4, 5));
  });

  it('returns exactly size IDs from a large node (greedy beyond the exhaustive limit)', () => {
    const big = TopologyScores.of(linkedInventory(64, (a, b) => (Math.abs(a - b) === 1 ? 4 : 0)));
    const result = preferWholeGpus(
      { available: ids(...Array.from({ length: 64 }, (_, i) => i)), mustInclude: ids(10), size: 8 },
      big,
    );
    expect(result).toHaveLength(8);
    expect(new Set(result).size).toBe(8);
    expect(result[0]).toBe(uuidOf(10));
  });
});

describe('preferWholeGpus: bounded work', () => {
  const scores = TopologyScores.of(linkedInventory(8, () => 12));

  it.each([
    // 400 choose 399 is only 400 sets, but of 80,000 pairs each: 13 s on the event loop before.
    ['hundreds offered, one fewer asked', 800, 799],
    ['thousands offered, half asked', 5000, 2500],
  ])('%s: answered without an exhaustive search', (_what, offered, size) => {
    const available = Array.from({ length: offered }, (_, i) => `GPU-unknown-${i}`);
    const result = preferWholeGpus({ available, mustInclude: [available[7]!], size }, scores);
    expect(result).toHaveLength(size);
    expect(new Set(result).size).toBe(size);
    expect(result[0]).toBe(available[7]);
  });
});

describe('preferShares', () => {
  const gpus = [gpu(0), gpu(1)];
  // 2 GPUs × 4 replicas, as NVIDIA's allocate_test.go
  const devices: AdvertisedDevice[] = gpus.flatMap((g) =>
    [0, 1, 2, 3].map((n) => ({ id: `${g.uuid}::${n}`, target: gpuTarget(g), share: n })),
  );
  const byId = new Map(devices.map((d) => [d.id, d]));
  const all = devices.map((d) => d.id);
  const on = (id: string) => id.split('::')[0];

  it('distributed: one replica per GPU for a request of 2 (split slices aside)', () => {
    const result = preferShares({ available: all, mustInclude: [], size: 1 }, byId, 'distributed');
    expect(result).toEqual([`${uuidOf(0)}::0`]);
    // GPU 0 has one replica in use: the next goes to GPU 1.
    const next = preferShares(
      { available: all.filter((id) => id !== `${uuidOf(0)}::0`), mustInclude: [], size: 1 },
      byId,
      'distributed',
    );
    expect(next.map(on)).toEqual([uuidOf(1)]);
  });

  it('packed: fills the GPU already in use first', () => {
    const available = all.filter((id) => id !== `${uuidOf(1)}::0`);
    const result = preferShares({ available, mustInclude: [], size: 1 }, byId, 'packed');
    expect(result.map(on)).toEqual([uuidOf(1)]);
  });

  it('a multi-share request lands on one GPU when one has room', () => {
    const available = all.filter((id) => id !== `${uuidOf(0)}::0`);
    expect(preferShares({ available, mustInclude: [], size: 3 }, byId, 'distributed').map(on)).toEqual([
      uuidOf(1),
      uuidOf(1),
      uuidOf(1),
    ]);
    expect(preferShares({ available, mustInclude: [], size: 3 }, byId, 'packed').map(on)).toEqual([
      uuidOf(0),
      uuidOf(0),
      uuidOf(0),
    ]);
  });

  it('spills over GPUs when none has room: packed 5 → 4 + 1 (NVIDIA allocate_test)', () => {
    const result = preferShares({ available: all, mustInclude: [], size: 5 }, byId, 'packed');
    const perGpu = new Map<string, number>();
    for (const u of result.map(on)) perGpu.set(u!, (perGpu.get(u!) ?? 0) + 1);
    expect([...perGpu.values()].sort()).toEqual([1, 4]);
  });

  it('keeps must-include and never returns IDs it was not offered', () => {
    const result = preferShares(
      { available: [...all, 'GPU-gone::0'], mustInclude: [`${uuidOf(1)}::2`], size: 2 },
      byId,
      'distributed',
    );
    expect(result[0]).toBe(`${uuidOf(1)}::2`);
    expect(result).toHaveLength(2);
    expect(result).not.toContain('GPU-gone::0');
  });
});

describe('preferInOrder', () => {
  it('must-include first, then kubelet order, exactly size', () => {
    expect(preferInOrder({ available: ['a', 'b', 'c', 'd'], mustInclude: ['c'], size: 2 })).toEqual([
      'c',
      'a',
    ]);
  });
});
