import { describe, expect, it } from 'vitest';
import { gpuTarget } from '../../src/devices/mig-strategy.js';
import type { AdvertisedDevice } from '../../src/devices/resource-types.js';
import { TopologyLevel } from '../../src/nvml/codes.js';
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

describe('TopologyScores', () => {
  it.each([
    ['INTERNAL', TopologyLevel.INTERNAL, 60],
    ['SINGLE', TopologyLevel.SINGLE, 50],
    ['MULTIPLE', TopologyLevel.MULTIPLE, 40],
    ['HOSTBRIDGE', TopologyLevel.HOSTBRIDGE, 30],
    ['NODE', TopologyLevel.NODE, 20],
    ['SYSTEM', TopologyLevel.SYSTEM, 10],
  ])('PCIe level %s scores %i, plus 100 per NVLink', (_name, pcieLevel, score) => {
    const scores = new TopologyScores([
      gpu(0, {
        links: [
          { peerUuid: uuidOf(1), nvlinks: 0, pcieLevel },
          { peerUuid: uuidOf(2), nvlinks: 3, pcieLevel },
        ],
      }),
    ]);
    expect(scores.pair(uuidOf(0), uuidOf(1))).toBe(score);
    expect(scores.pair(uuidOf(0), uuidOf(2))).toBe(300 + score);
    // Only what a GPU's own links say: GPU 1 was not read here.
    expect(scores.pair(uuidOf(1), uuidOf(0))).toBe(0);
  });

  it('symmetric: both GPUs report NVLinks to each other, or neither does (HAMi scores one-sided pairs 0)', () => {
    const link = (peer: number, nvlinks: number) => ({
      peerUuid: uuidOf(peer),
      nvlinks,
      pcieLevel: TopologyLevel.NODE,
    });
    // GPU 5 was not read: only GPU 0's and GPU 3's side of their links is known.
    const scores = new TopologyScores([
      gpu(0, { links: [link(1, 2), link(2, 3), link(3, 0), link(4, 1), link(5, 0)] }),
      gpu(1, { links: [link(0, 2), link(2, 0)] }),
      gpu(2, { links: [link(0, 0), link(1, 0)] }),
      gpu(3, { links: [link(0, 0), link(5, 4)] }),
      gpu(4, { links: [] }),
    ]);
    const symmetric = (a: number, b: number) => [
      scores.symmetric(uuidOf(a), uuidOf(b)),
      scores.symmetric(uuidOf(b), uuidOf(a)),
    ];
    expect(symmetric(0, 1)).toEqual([true, true]); // NVLinks both ways
    expect(symmetric(1, 2)).toEqual([true, true]); // none either way
    expect(symmetric(0, 3)).toEqual([true, true]);
    expect(symmetric(0, 5)).toEqual([true, true]); // none, and the other end unknown
    expect(symmetric(0, 2)).toEqual([false, false]); // GPU 2 reports no NVLink to 0
    expect(symmetric(0, 4)).toEqual([false, false]); // GPU 4 reports no link to 0 at all
    expect(symmetric(3, 5)).toEqual([false, false]);
  });

  it('a set scores the sum of its pairs, each pair once', () => {
    const scores = TopologyScores.of(linkedInventory(3, (a, b) => a + b));
    // (0,1): 1 NVLink + SINGLE; (0,2): 2 + NODE; (1,2): 3 + NODE
    expect(scores.setScore(ids(0, 1, 2))).toBe(150 + 220 + 320);
    expect(scores.setScore(ids(2, 0))).toBe(220);
    expect(scores.setScore(ids(1))).toBe(0);
  });
});

describe('preferWholeGpus: the search', () => {
  /** No links at all: every set scores 0. */
  const flat = TopologyScores.of({
    driverVersion: '580.95.05',
    cudaDriverVersion: '13.0',
    gpus: [0, 1, 2, 3, 4, 5].map((i) => gpu(i)),
    problems: [],
  });

  it('ties go to the earliest IDs in kubelet’s order', () => {
    expect(preferWholeGpus({ available: ids(3, 1, 2, 0), mustInclude: [], size: 2 }, flat)).toEqual(
      ids(3, 1),
    );
    expect(
      preferWholeGpus({ available: ids(5, 4, 3), mustInclude: ids(3), size: 2, checked: true }, flat),
    ).toEqual(ids(3, 5));
  });

  it('a checked request’s must-include IDs are never picked a second time, wherever kubelet lists them', () => {
    // Kubelet's available list holds the must-include IDs too; here GPU 3 comes first and ties with all.
    expect(
      preferWholeGpus({ available: ids(3, 5, 4), mustInclude: ids(3), size: 2, checked: true }, flat),
    ).toEqual(ids(3, 5));
    expect(preferInOrder({ available: ['c', 'a', 'b'], mustInclude: ['c'], size: 2, checked: true })).toEqual(
      ['c', 'a'],
    );
  });

  it('a must-include list that fills the request is the answer', () => {
    const scores = TopologyScores.of(linkedInventory(4, () => 12));
    expect(preferWholeGpus({ available: ids(0, 1, 2, 3), mustInclude: ids(3, 1), size: 2 }, scores)).toEqual(
      ids(3, 1),
    );
  });

  it('an unchecked request is cleaned first: must-include deduplicated, kept only if offered, cut to size', () => {
    const scores = TopologyScores.of(linkedInventory(4));
    // GPU 5 is not offered, GPU 1 is named twice: 1 stays, and its PCIe neighbour 0 joins it.
    expect(
      preferWholeGpus({ available: ids(0, 1, 2, 3), mustInclude: ids(5, 1, 1), size: 2 }, scores),
    ).toEqual(ids(1, 0));
    expect(
      preferWholeGpus({ available: ids(0, 1, 2, 3), mustInclude: ids(2, 0, 1), size: 2 }, scores),
    ).toEqual(ids(2, 0));
  });

  /** GPUs 0-7 linked pairwise by 1 NVLink, 8-15 by 12: greedy starts at 0 and stays in the weak group. */
  const twoCliques = TopologyScores.of(
    linkedInventory(16, (a, b) => (a < 8 && b < 8 ? 1 : a >= 8 && b >= 8 ? 12 : 0)),
  );
  const sixteen = ids(...Array.from({ length: 16 }, (_, i) => i));

  it('16 GPUs, 8 wanted (12,870 sets): exhaustive, so the strong group wins', () => {
    expect(preferWholeGpus({ available: sixteen, mustInclude: [], size: 8 }, twoCliques)).toEqual(
      ids(8, 9, 10, 11, 12, 13, 14, 15),
    );
  });

  it('201 GPUs, 2 wanted (20,100 sets): greedy from the first GPU, not the best pair', () => {
    const scores = TopologyScores.of(
      linkedInventory(201, (a, b) =>
        (a === 0 && b === 1) || (a === 1 && b === 0) ? 1 : a >= 199 && b >= 199 ? 12 : 0,
      ),
    );
    const available = ids(...Array.from({ length: 201 }, (_, i) => i));
    expect(preferWholeGpus({ available, mustInclude: [], size: 2 }, scores)).toEqual(ids(0, 1));
    // Without GPU 2, 200 GPUs (19,900 sets) are searched exhaustively: the best pair wins.
    const withoutTwo = available.filter((_, i) => i !== 2);
    expect(preferWholeGpus({ available: withoutTwo, mustInclude: [], size: 2 }, scores)).toEqual(
      ids(199, 200),
    );
  });

  it('greedy: the best-connected GPU next, earliest on ties, must-include first', () => {
    // 30 GPUs choose 10: millions of sets. GPUs 5-14 are linked pairwise by 12 NVLinks.
    const scores = TopologyScores.of(
      linkedInventory(30, (a, b) => (a >= 5 && a <= 14 && b >= 5 && b <= 14 ? 12 : 0)),
    );
    const available = ids(...Array.from({ length: 30 }, (_, i) => i));
    // 6 shares a PCIe switch with 7 (SINGLE beats NODE), then ties go to the lowest index, and each
    // GPU's switch partner right after it.
    expect(preferWholeGpus({ available, mustInclude: ids(7), size: 10 }, scores)).toEqual(
      ids(7, 6, 5, 8, 9, 10, 11, 12, 13, 14),
    );
  });

  it('greedy follows its picks: each next GPU is the one best connected to all taken so far', () => {
    // 52 GPUs, 4 wanted with GPU 10 (20,825 sets): greedy. An NVLink chain 10 → 20 → 25 → 29, and
    // GPU 11 is 10's PCIe switch partner: the best partner of the must-include GPU alone after 20.
    const chain = new Set(['10-20', '20-25', '25-29']);
    const scores = TopologyScores.of(
      linkedInventory(52, (a, b) => (chain.has(`${Math.min(a, b)}-${Math.max(a, b)}`) ? 12 : 0)),
    );
    const available = ids(...Array.from({ length: 52 }, (_, i) => i));
    expect(preferWholeGpus({ available, mustInclude: ids(10), size: 4 }, scores)).toEqual(
      ids(10, 20, 25, 29),
    );
  });

  it('the greedy budget: 1,000 candidates × a set of 1,000 is searched, one candidate more is not', () => {
    // GPU 1 is GPU 0's only linked peer and kubelet lists it last: greedy takes it, kubelet's order leaves it.
    const scores = TopologyScores.of(linkedInventory(2));
    const unknown = Array.from({ length: 1000 }, (_, i) => `GPU-unknown-${i}`);
    const request = (others: number) => ({
      available: [uuidOf(0), ...unknown.slice(0, others), uuidOf(1)],
      mustInclude: [uuidOf(0)],
      size: 1000,
    });
    expect(preferWholeGpus(request(999), scores)).toEqual([uuidOf(0), uuidOf(1), ...unknown.slice(0, 998)]);
    expect(preferWholeGpus(request(1000), scores)).toEqual([uuidOf(0), ...unknown.slice(0, 999)]);
  });

  it('the exhaustive budget counts each pair of the whole set once: 3 sets × 816·815/2 pairs is searched', () => {
    // GPU 0 (must-include) is 1's NVLink and switch partner; 2 and 3 are each other's (12 NVLinks).
    // Greedy takes 1 first and ends with {1, 2}; the best pair is {2, 3}.
    const scores = TopologyScores.of(linkedInventory(4, (a, b) => (a + b === 1 ? 1 : a + b === 5 ? 12 : 0)));
    const request = (unknownMust: number) => {
      const must = [uuidOf(0), ...Array.from({ length: unknownMust }, (_, i) => `GPU-unknown-${i}`)];
      return { available: [...must, ...ids(1, 2, 3)], mustInclude: must, size: must.length + 2 };
    };
    // 814 must-include + 2 = 816 GPUs: 3 × 332,520 = 997,560 pair scores, within 1,000,000.
    expect(preferWholeGpus(request(813), scores).slice(-2)).toEqual(ids(2, 3));
    // One more must-include, 817 GPUs: 3 × 333,336 = 1,000,008, over: greedy.
    expect(preferWholeGpus(request(814), scores).slice(-2)).toEqual(ids(1, 2));
  });

  it('beyond the greedy budget: must-include, then kubelet’s order', () => {
    const available = Array.from({ length: 5000 }, (_, i) => `GPU-unknown-${i}`);
    const result = preferWholeGpus(
      { available, mustInclude: [available[7]!], size: 2500 },
      TopologyScores.of(linkedInventory(2)),
    );
    expect(result).toEqual([available[7], ...available.filter((_, i) => i !== 7).slice(0, 2499)]);
  });
});

describe('preferShares: must-include, ties and spill-over', () => {
  const threeGpus = [gpu(0), gpu(1), gpu(2)];
  const sharesOf = (gpus: ReturnType<typeof gpu>[], count: number) =>
    new Map(
      gpus.flatMap((g) =>
        Array.from({ length: count }, (_, n): [string, AdvertisedDevice] => [
          `${g.uuid}::${n}`,
          { id: `${g.uuid}::${n}`, target: gpuTarget(g), share: n },
        ]),
      ),
    );
  const share = (gpuIndex: number, n: number) => `${uuidOf(gpuIndex)}::${n}`;

  it('a must-include list that fills the request is the answer', () => {
    const byId = sharesOf(threeGpus, 2);
    expect(
      preferShares({ available: [...byId.keys()], mustInclude: [share(2, 1)], size: 1 }, byId, 'packed'),
    ).toEqual([share(2, 1)]);
  });

  it('the rest of a request goes to the must-include GPU when it has room, even with less room than others', () => {
    const byId = sharesOf(threeGpus, 4);
    // GPU 1 has ::1 in use elsewhere; GPU 0 and 2 are free: distributed alone would pick GPU 0.
    const available = [...byId.keys()].filter((id) => id !== share(1, 1));
    expect(preferShares({ available, mustInclude: [share(1, 2)], size: 3 }, byId, 'distributed')).toEqual([
      share(1, 2),
      share(1, 0),
      share(1, 3),
    ]);
  });

  it('must-include on two GPUs: no single GPU, the rest spread by policy', () => {
    const byId = sharesOf(threeGpus, 2);
    expect(
      preferShares(
        { available: [...byId.keys()], mustInclude: [share(0, 0), share(1, 0)], size: 3 },
        byId,
        'distributed',
      ),
    ).toEqual([share(0, 0), share(1, 0), share(2, 0)]);
    // Two more, though each must-include GPU has room for both: the free GPU first, then by UUID.
    const roomy = sharesOf(threeGpus, 4);
    expect(
      preferShares(
        { available: [...roomy.keys()], mustInclude: [share(0, 0), share(1, 0)], size: 4 },
        roomy,
        'distributed',
      ),
    ).toEqual([share(0, 0), share(1, 0), share(2, 0), share(0, 1)]);
  });

  it('a must-include share counts as this container’s: the rest goes to the GPU it took fewer from', () => {
    const byId = sharesOf(threeGpus.slice(0, 2), 2);
    // GPU 0's ::0 is ours (must-include), GPU 1's ::0 is in use elsewhere: equal load, GPU 1 next.
    const available = [...byId.keys()].filter((id) => id !== share(1, 0));
    expect(preferShares({ available, mustInclude: [share(0, 0)], size: 2 }, byId, 'distributed')).toEqual([
      share(0, 0),
      share(1, 1),
    ]);
  });

  it('packed takes the GPU with the least room that fits, distributed the one with the most', () => {
    const byId = sharesOf(threeGpus.slice(0, 2), 4);
    // GPU 0 has two replicas in use: 2 free; GPU 1 has 4 free.
    const available = [...byId.keys()].filter((id) => id !== share(0, 0) && id !== share(0, 1));
    expect(preferShares({ available, mustInclude: [], size: 2 }, byId, 'packed')).toEqual([
      share(0, 2),
      share(0, 3),
    ]);
    expect(preferShares({ available, mustInclude: [], size: 2 }, byId, 'distributed')).toEqual([
      share(1, 0),
      share(1, 1),
    ]);
    // The other way round (GPU 1 has two in use), whatever the UUID order.
    const mirrored = [...byId.keys()].filter((id) => id !== share(1, 0) && id !== share(1, 1));
    expect(preferShares({ available: mirrored, mustInclude: [], size: 2 }, byId, 'packed')).toEqual([
      share(1, 2),
      share(1, 3),
    ]);
    expect(preferShares({ available: mirrored, mustInclude: [], size: 2 }, byId, 'distributed')).toEqual([
      share(0, 0),
      share(0, 1),
    ]);
  });

  it('GPUs are ranked by UUID whatever kubelet’s order: equal GPUs give the first by UUID', () => {
    const byId = sharesOf(threeGpus.slice(0, 2), 2);
    const reversed = [...byId.keys()].reverse();
    expect(preferShares({ available: reversed, mustInclude: [], size: 1 }, byId, 'distributed')).toEqual([
      share(0, 1),
    ]);
    expect(preferShares({ available: reversed, mustInclude: [], size: 2 }, byId, 'distributed')).toEqual([
      share(0, 1),
      share(0, 0),
    ]);
  });

  it('equal GPUs give the first by UUID whatever the order of the resource’s devices', () => {
    // The resource lists devices in GPU index order, which need not be UUID order.
    const byId = sharesOf([gpu(1), gpu(0)], 2);
    const available = [...byId.keys()];
    expect(preferShares({ available, mustInclude: [], size: 1 }, byId, 'distributed')).toEqual([share(0, 0)]);
    expect(preferShares({ available, mustInclude: [], size: 1 }, byId, 'packed')).toEqual([share(0, 0)]);
    expect(preferShares({ available, mustInclude: [], size: 2 }, byId, 'packed')).toEqual([
      share(0, 0),
      share(0, 1),
    ]);
  });

  it('spread: between equally loaded GPUs, the one this container took fewer from', () => {
    const byId = sharesOf(threeGpus.slice(0, 2), 2);
    // GPU 1 has one replica in use elsewhere; 3 wanted, no GPU has 3 free.
    const available = [...byId.keys()].filter((id) => id !== share(1, 0));
    expect(preferShares({ available, mustInclude: [], size: 3 }, byId, 'distributed')).toEqual([
      share(0, 0),
      share(1, 1),
      share(0, 1),
    ]);
  });

  it('an unchecked request for more than is offered gets what is offered, and an unknown must-include is kept', () => {
    const byId = sharesOf(threeGpus.slice(0, 1), 2);
    expect(preferShares({ available: [...byId.keys()], mustInclude: [], size: 5 }, byId, 'packed')).toEqual([
      share(0, 0),
      share(0, 1),
    ]);
    expect(
      preferShares(
        { available: ['GPU-gone::0', ...byId.keys()], mustInclude: ['GPU-gone::0'], size: 2 },
        byId,
        'distributed',
      ),
    ).toEqual(['GPU-gone::0', share(0, 0)]);
  });
});
