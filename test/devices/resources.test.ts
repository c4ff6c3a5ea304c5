import { describe, expect, it } from 'vitest';
import type { DeviceRef } from '../../src/config/devices.js';
import type { Inventory } from '../../src/devices/inventory-types.js';
import { MigStrategyError, targetsByResource } from '../../src/devices/mig-strategy.js';
import {
  buildResources,
  parseDeviceId,
  ResourceConfigError,
  type SharingConfig,
} from '../../src/devices/resources.js';
import { gpu, linkedInventory, mig, uuidOf } from '../helpers/inventory.js';

function sharing(overrides: Partial<SharingConfig> = {}): SharingConfig {
  return {
    migStrategy: 'none',
    timeSlicing: { failRequestsGreaterThanOne: false, resources: [] },
    split: { resources: [] },
    ...overrides,
  };
}

const summary = (inventory: Inventory, config: SharingConfig) =>
  buildResources(config, inventory).resources.map((r) => [r.name, r.sharing, r.devices.map((d) => d.id)]);

/** GPU 0 in MIG mode with 1×3g.40gb + 2×2g.20gb, GPU 1 whole. */
function mixedNode(): Inventory {
  const g0 = gpu(0, { migEnabled: true });
  g0.migDevices = [mig(g0, 0, '3g.40gb', 40192), mig(g0, 1, '2g.20gb', 19968), mig(g0, 2, '2g.20gb', 19968)];
  return { driverVersion: 'x', cudaDriverVersion: null, gpus: [g0, gpu(1)], problems: [] };
}

describe('buildResources: exclusive and MIG strategies', () => {
  it('exclusive: one device per GPU, ID = UUID', () => {
    expect(summary(linkedInventory(2), sharing())).toEqual([
      ['nvidia.com/gpu', 'exclusive', [uuidOf(0), uuidOf(1)]],
    ]);
  });

  it('MIG none: MIG-enabled GPUs still count as whole GPUs', () => {
    expect(summary(mixedNode(), sharing())).toEqual([
      ['nvidia.com/gpu', 'exclusive', [uuidOf(0), uuidOf(1)]],
    ]);
  });

  it('MIG mixed: one resource per profile, whole GPUs stay nvidia.com/gpu', () => {
    const node = mixedNode();
    const [m0, m1, m2] = node.gpus[0]!.migDevices.map((m) => m.uuid);
    expect(summary(node, sharing({ migStrategy: 'mixed' }))).toEqual([
      ['nvidia.com/gpu', 'exclusive', [uuidOf(1)]],
      ['nvidia.com/mig-2g.20gb', 'exclusive', [m1, m2]],
      ['nvidia.com/mig-3g.40gb', 'exclusive', [m0]],
    ]);
  });

  it.each([
    [
      'mixed MIG on/off',
      mixedNode(),
      'all devices on the node must be configured with the same migEnabled value',
    ],
    [
      'MIG on without MIG devices',
      { driverVersion: 'x', cudaDriverVersion: null, gpus: [gpu(0, { migEnabled: true })], problems: [] },
      'device 0 has no MIG devices configured',
    ],
    [
      'several profiles',
      (() => {
        const n = mixedNode();
        n.gpus = [n.gpus[0]!];
        return n;
      })(),
      'more than one MIG device type present on node (2g.20gb, 3g.40gb)',
    ],
  ])('MIG single refuses %s with NVIDIA’s error', (_name, node, message) => {
    expect(() => buildResources(sharing({ migStrategy: 'single' }), node)).toThrow(
      new MigStrategyError(message),
    );
  });

  it('MIG single: identical MIG devices advertised as nvidia.com/gpu', () => {
    const g0 = gpu(0, { migEnabled: true });
    g0.migDevices = [mig(g0, 0, '1g.10gb', 9856), mig(g0, 1, '1g.10gb', 9856)];
    const node: Inventory = { driverVersion: 'x', cudaDriverVersion: null, gpus: [g0], problems: [] };
    const built = buildResources(sharing({ migStrategy: 'single' }), node).resources;
    expect(
      built.map((r) => [r.name, r.devices.map((d) => [d.id, d.target.index, d.target.gpuUuid])]),
    ).toEqual([['nvidia.com/gpu', g0.migDevices.map((m) => [m.uuid, m.index, g0.uuid])]]);
  });
});

describe('buildResources: time-slicing', () => {
  const ts = (resources: SharingConfig['timeSlicing']['resources'], fail = false) =>
    sharing({ timeSlicing: { failRequestsGreaterThanOne: fail, resources } });

  it('replicates every GPU as <uuid>::<n>', () => {
    const built = buildResources(
      ts([{ name: 'nvidia.com/gpu', replicas: 3, devices: { type: 'all' } }]),
      linkedInventory(2),
    );
    expect(built.resources).toHaveLength(1);
    expect(built.resources[0]!.sharing).toBe('time-slicing');
    expect(built.resources[0]!.devices.map((d) => d.id)).toEqual([
      `${uuidOf(0)}::0`,
      `${uuidOf(0)}::1`,
      `${uuidOf(0)}::2`,
      `${uuidOf(1)}::0`,
      `${uuidOf(1)}::1`,
      `${uuidOf(1)}::2`,
    ]);
  });

  it('rename advertises the replicas under the new name; unselected GPUs stay exclusive', () => {
    const config = ts(
      [
        {
          name: 'nvidia.com/gpu',
          rename: 'nvidia.com/gpu.shared',
          replicas: 2,
          devices: { type: 'list', devices: [{ type: 'index', index: 1 }] },
        },
      ],
      true,
    );
    const built = buildResources(config, linkedInventory(2)).resources;
    expect(
      built.map((r) => [r.name, r.sharing, r.failRequestsGreaterThanOne, r.devices.map((d) => d.id)]),
    ).toEqual([
      ['nvidia.com/gpu', 'exclusive', false, [uuidOf(0)]],
      ['nvidia.com/gpu.shared', 'time-slicing', true, [`${uuidOf(1)}::0`, `${uuidOf(1)}::1`]],
    ]);
  });

  it('a count selects the first GPUs; too many is NVIDIA’s error', () => {
    const built = buildResources(
      ts([{ name: 'nvidia.com/gpu', replicas: 2, devices: { type: 'count', count: 1 } }]),
      linkedInventory(2),
    );
    expect(built.resources[0]!.devices.map((d) => d.id)).toEqual([
      `${uuidOf(0)}::0`,
      `${uuidOf(0)}::1`,
      uuidOf(1),
    ]);
    expect(() =>
      buildResources(
        ts([{ name: 'nvidia.com/gpu', replicas: 2, devices: { type: 'count', count: 3 } }]),
        linkedInventory(2),
      ),
    ).toThrow(
      new ResourceConfigError(
        'sharing.timeSlicing.resources[0]: requested 3 devices to be replicated, but only 2 devices available',
      ),
    );
  });

  it('a device the node does not have is an error naming it', () => {
    expect(() =>
      buildResources(
        ts([
          {
            name: 'nvidia.com/gpu',
            replicas: 2,
            devices: { type: 'list', devices: [{ type: 'uuid', uuid: 'GPU-nope' }] },
          },
        ]),
        linkedInventory(1),
      ),
    ).toThrow('sharing.timeSlicing.resources[0]: no matching device with UUID GPU-nope');
  });

  it('replicates MIG devices of a mixed node by their resource name', () => {
    const node = mixedNode();
    const built = buildResources(
      sharing({
        migStrategy: 'mixed',
        timeSlicing: {
          failRequestsGreaterThanOne: false,
          resources: [{ name: 'nvidia.com/mig-3g.40gb', replicas: 2, devices: { type: 'all' } }],
        },
      }),
      node,
    );
    const m0 = node.gpus[0]!.migDevices[0]!.uuid;
    expect(
      built.resources.find((r) => r.name === 'nvidia.com/mig-3g.40gb')!.devices.map((d) => d.id),
    ).toEqual([`${m0}::0`, `${m0}::1`]);
  });

  it('warns, without failing, about a name that matches nothing on this node', () => {
    const built = buildResources(
      ts([{ name: 'nvidia.com/mig-1g.5gb', replicas: 2, devices: { type: 'all' } }]),
      linkedInventory(1),
    );
    expect(built.warnings).toEqual([
      'sharing.timeSlicing.resources[0]: no nvidia.com/mig-1g.5gb devices on this node (resources here: nvidia.com/gpu)',
    ]);
    expect(built.resources.map((r) => r.name)).toEqual(['nvidia.com/gpu']);
  });
});

describe('buildResources: split', () => {
  const split = (count: number, memoryScaling = 1, coreScaling = 1) =>
    sharing({
      split: {
        resources: [{ name: 'nvidia.com/gpu', count, memoryScaling, coreScaling, devices: { type: 'all' } }],
      },
    });

  it('slices each GPU into count slices of floor(memory × scaling / count) MiB and floor(100 × scaling / count) %', () => {
    const built = buildResources(split(3), linkedInventory(1)).resources[0]!;
    expect(built.sharing).toBe('split');
    expect(built.devices.map((d) => [d.id, d.slice])).toEqual([
      [`${uuidOf(0)}::0`, { memoryMiB: 27306, corePercent: 33 }],
      [`${uuidOf(0)}::1`, { memoryMiB: 27306, corePercent: 33 }],
      [`${uuidOf(0)}::2`, { memoryMiB: 27306, corePercent: 33 }],
    ]);
    expect(buildResources(split(4, 1.5, 2), linkedInventory(1)).resources[0]!.devices[0]!.slice).toEqual({
      memoryMiB: 30720,
      corePercent: 50,
    });
  });

  it('refuses to split MIG devices (split + MIG single is defined as an error)', () => {
    const g0 = gpu(0, { migEnabled: true });
    g0.migDevices = [mig(g0, 0, '1g.10gb', 9856)];
    const node: Inventory = { driverVersion: 'x', cudaDriverVersion: null, gpus: [g0], problems: [] };
    expect(() => buildResources({ ...split(2), migStrategy: 'single' }, node)).toThrow(
      /split slices whole GPUs, but nvidia.com\/gpu holds MIG devices/,
    );
  });

  it('several entries for one name slice the GPUs their devices lists select', () => {
    const list = (index: number) => ({ type: 'list' as const, devices: [{ type: 'index' as const, index }] });
    const built = buildResources(
      sharing({
        split: {
          resources: [
            { name: 'nvidia.com/gpu', count: 2, memoryScaling: 1, coreScaling: 1, devices: list(0) },
            {
              name: 'nvidia.com/gpu',
              rename: 'nvidia.com/gpu-quarter',
              count: 4,
              memoryScaling: 1,
              coreScaling: 1,
              devices: list(1),
            },
          ],
        },
      }),
      linkedInventory(3),
    );
    expect(built.resources.map((r) => [r.name, r.devices.map((d) => d.id)])).toEqual([
      ['nvidia.com/gpu', [`${uuidOf(0)}::0`, `${uuidOf(0)}::1`, uuidOf(2)]],
      ['nvidia.com/gpu-quarter', [0, 1, 2, 3].map((n) => `${uuidOf(1)}::${n}`)],
    ]);
  });

  it('gives the same IDs for the same node and config (deterministic across restarts)', () => {
    expect(buildResources(split(5), linkedInventory(4))).toEqual(
      buildResources(split(5), linkedInventory(4)),
    );
  });
});

describe('buildResources: what kubelet can receive', () => {
  const replicas = (n: number) =>
    sharing({
      timeSlicing: {
        failRequestsGreaterThanOne: false,
        resources: [{ name: 'nvidia.com/gpu', replicas: n, devices: { type: 'all' } }],
      },
    });

  it('refuses a resource whose device list would not fit one ListAndWatch message, saying by how much', () => {
    // 8 GPUs × 9,000 replicas: the device list kubelet dropped in the report (over 4 MiB).
    expect(() => buildResources(replicas(9000), linkedInventory(8))).toThrow(
      new ResourceConfigError(
        'sharing.timeSlicing.resources[0]: nvidia.com/gpu would have 72000 devices (8 × 9000 replicas), ' +
          'a ListAndWatch message of 4815120 bytes (4.59 MiB); at most 3670016 bytes (3.5 MiB) fit ' +
          "safely under kubelet's 4 MiB message limit: lower replicas or select fewer devices",
      ),
    );
  });

  it('accepts the largest that fits: 6,863 replicas of 8 GPUs with 40-character UUIDs', () => {
    const built = buildResources(replicas(6863), linkedInventory(8));
    expect(built.resources[0]!.devices).toHaveLength(8 * 6863);
    expect(() => buildResources(replicas(6864), linkedInventory(8))).toThrow(ResourceConfigError);
  });

  it('accepts a list of exactly 3.5 MiB and refuses one replica more', () => {
    // 2 GPUs × 27,147 replicas and 4 whole GPUs: 3,670,016 bytes, the limit to the byte.
    const config = (n: number) =>
      sharing({
        timeSlicing: {
          failRequestsGreaterThanOne: false,
          resources: [{ name: 'nvidia.com/gpu', replicas: n, devices: { type: 'count', count: 2 } }],
        },
      });
    expect(buildResources(config(27_147), linkedInventory(6)).resources[0]!.devices).toHaveLength(
      2 * 27_147 + 4,
    );
    expect(() => buildResources(config(27_148), linkedInventory(6))).toThrow(
      /nvidia.com\/gpu would have 54300 devices \(2 × 27148 replicas\), a ListAndWatch message of 3670152 bytes/,
    );
  });

  it('names every entry that adds to the list', () => {
    const gpus = (indexes: number[]) => ({
      type: 'list' as const,
      devices: indexes.map((index) => ({ type: 'index' as const, index })),
    });
    const config = sharing({
      timeSlicing: {
        failRequestsGreaterThanOne: false,
        resources: [
          { name: 'nvidia.com/gpu', replicas: 9000, devices: gpus([0, 1, 2, 3]) },
          { name: 'nvidia.com/gpu', replicas: 9000, devices: gpus([4, 5, 6, 7]) },
        ],
      },
    });
    expect(() => buildResources(config, linkedInventory(8))).toThrow(
      'sharing.timeSlicing.resources[0], sharing.timeSlicing.resources[1]: nvidia.com/gpu would have 72000 ' +
        'devices (4 × 9000 replicas + 4 × 9000 replicas)',
    );
  });

  it('refuses 100,000,000 replicas per GPU before building a single device', () => {
    // The schema bounds replicas; this checks the core itself never allocates per replica first.
    expect(() => buildResources(replicas(100_000_000), linkedInventory(8))).toThrow(
      /nvidia.com\/gpu would have 800000000 devices \(8 × 100000000 replicas\)/,
    );
  });

  it('counts split slices and the GPUs left whole under the same name', () => {
    const config = sharing({
      split: {
        resources: [
          {
            name: 'nvidia.com/gpu',
            count: 32_768,
            memoryScaling: 1,
            coreScaling: 400,
            devices: { type: 'list', devices: [0, 1].map((index) => ({ type: 'index' as const, index })) },
          },
        ],
      },
    });
    expect(() => buildResources(config, linkedInventory(8))).toThrow(
      /^sharing.split.resources\[0\]: nvidia.com\/gpu would have 65542 devices \(2 × 32768 slices\), .*: lower count or select fewer devices$/,
    );
  });
});

/** HAMi mode's settings with HAMi's chart defaults and 3 replicas per GPU. */
function hami(overrides: Partial<NonNullable<SharingConfig['hami']>> = {}): SharingConfig['hami'] {
  return {
    resourceCountName: 'nvidia.com/gpu',
    resourceMemoryName: 'nvidia.com/gpumem',
    resourceMemoryPercentageName: 'nvidia.com/gpumem-percentage',
    resourceCoreName: 'nvidia.com/gpucores',
    resourcePriorityName: 'nvidia.com/priority',
    deviceSplitCount: 3,
    deviceMemoryScaling: 1,
    deviceCoreScaling: 1,
    preConfiguredDeviceMemory: 0,
    disableCoreLimit: false,
    libCudaLogLevel: null,
    hookPath: '/usr/local/vgpu',
    topologyScore: false,
    nodeLockTimeoutSeconds: 300,
    ...overrides,
  };
}

describe('parseDeviceId: back from the IDs kubelet was given to the device behind them', () => {
  it('gives the GPU or MIG device and the share of every ID the plugin advertises, any mode', () => {
    const configs: [string, SharingConfig][] = [
      ['whole', sharing()],
      [
        'time-slicing',
        sharing({
          migStrategy: 'mixed',
          timeSlicing: {
            failRequestsGreaterThanOne: false,
            resources: [
              // 12 replicas: shares of two digits, ::10 and ::11
              { name: 'nvidia.com/gpu', replicas: 12, devices: { type: 'all' } },
              { name: 'nvidia.com/mig-2g.20gb', replicas: 2, devices: { type: 'all' } },
            ],
          },
        }),
      ],
      ['mig mixed', sharing({ migStrategy: 'mixed' })],
    ];
    const splitNode = linkedInventory(2);
    const split = sharing({
      split: {
        resources: [
          { name: 'nvidia.com/gpu', count: 4, memoryScaling: 1, coreScaling: 1, devices: { type: 'all' } },
        ],
      },
    });
    const built = [
      ...configs.flatMap(([, config]) => buildResources(config, mixedNode()).resources),
      ...buildResources(split, splitNode).resources,
    ];
    const devices = built.flatMap((r) => r.devices);
    expect(devices.some((d) => d.share !== undefined && d.target.kind === 'mig')).toBe(true);
    expect(devices.some((d) => d.slice !== undefined)).toBe(true);
    expect(devices.some((d) => d.id.endsWith('::11'))).toBe(true);
    for (const device of devices) {
      const expected =
        device.share === undefined
          ? { uuid: device.target.uuid }
          : { uuid: device.target.uuid, share: device.share };
      expect(parseDeviceId(device.id)).toEqual(expected);
    }
  });

  it("is undefined for what this plugin never advertises (another plugin's devices, malformed shares)", () => {
    for (const id of [
      'nvidia0',
      'nvidia0/vgpu3',
      'GPU-abc::',
      'GPU-abc::x',
      'GPU-abc::01',
      'GPU-abc::1x',
      '::3',
      'GPU-',
      'eth0',
      'vgpu-GPU-abc',
      'GPU-abc def',
    ]) {
      expect(parseDeviceId(id), id).toBeUndefined();
    }
    expect(parseDeviceId('MIG-GPU-abc/1/0')).toEqual({ uuid: 'MIG-GPU-abc/1/0' });
  });

  it("reads HAMi mode's <uuid>-<n> replicas given the node's UUIDs, and only those UUIDs", () => {
    const node = linkedInventory(2);
    const devices = buildResources(sharing({ hami: hami() }), node).resources.flatMap((r) => r.devices);
    const known = new Set(node.gpus.map((g) => g.uuid));
    expect(devices).toHaveLength(6);
    for (const device of devices) {
      expect(parseDeviceId(device.id, known)).toEqual({ uuid: device.target.uuid, share: device.share });
    }
    // a GPU of its own whose UUID ends in -<n> stays whole
    expect(parseDeviceId(`${uuidOf(0)}`, known)).toEqual({ uuid: uuidOf(0) });
    // without the node's UUIDs a HAMi ID is indistinguishable from a UUID
    expect(parseDeviceId(`${uuidOf(0)}-2`)).toEqual({ uuid: `${uuidOf(0)}-2` });
    expect(parseDeviceId('GPU-elsewhere-2', known)).toEqual({ uuid: 'GPU-elsewhere-2' });
  });
});

describe('buildResources: HAMi scheduler mode', () => {
  it("deviceSplitCount replicas per GPU with HAMi's IDs <uuid>-<n>, under resourceCountName", () => {
    expect(summary(linkedInventory(2), sharing({ hami: hami() }))).toEqual([
      ['nvidia.com/gpu', 'hami', [0, 1].flatMap((g) => [0, 1, 2].map((n) => `${uuidOf(g)}-${n}`))],
    ]);
    expect(
      summary(linkedInventory(1), sharing({ hami: hami({ resourceCountName: 'nvidia.com/vgpu' }) }))[0]![0],
    ).toBe('nvidia.com/vgpu');
  });

  it('never refuses a request for several replicas, and warns of nothing on a node with GPUs', () => {
    const built = buildResources(sharing({ hami: hami() }), linkedInventory(1));
    expect(built.warnings).toEqual([]);
    expect(built.resources.map((r) => r.failRequestsGreaterThanOne)).toEqual([false]);
  });

  it('advertises nothing on a node without GPUs, and says so', () => {
    const empty: Inventory = { driverVersion: 'x', cudaDriverVersion: null, gpus: [], problems: [] };
    expect(buildResources(sharing({ hami: hami() }), empty)).toEqual({
      resources: [],
      warnings: ['sharing.hami: no GPUs on this node'],
    });
  });

  it('refuses a deviceSplitCount whose device list kubelet could not receive, naming the setting', () => {
    expect(() =>
      buildResources(sharing({ hami: hami({ deviceSplitCount: 9000 }) }), linkedInventory(8)),
    ).toThrow(
      new ResourceConfigError(
        'sharing.hami: nvidia.com/gpu would have 72000 devices (8 × 9000 replicas), ' +
          'a ListAndWatch message of 4815120 bytes (4.59 MiB); at most 3670016 bytes (3.5 MiB) fit ' +
          "safely under kubelet's 4 MiB message limit: lower deviceSplitCount",
      ),
    );
  });

  it('MIG-enabled GPUs count as whole GPUs; a MIG strategy is refused', () => {
    expect(summary(mixedNode(), sharing({ hami: hami({ deviceSplitCount: 1 }) }))).toEqual([
      ['nvidia.com/gpu', 'hami', [`${uuidOf(0)}-0`, `${uuidOf(1)}-0`]],
    ]);
    expect(() => buildResources(sharing({ migStrategy: 'mixed', hami: hami() }), mixedNode())).toThrow(
      'sharing.hami shares whole GPUs: flags.migStrategy must be none (got mixed)',
    );
  });
});
describe('buildResources: selections, names and warnings', () => {
  const ts = (
    resources: SharingConfig['timeSlicing']['resources'],
    fail = false,
    migStrategy: SharingConfig['migStrategy'] = 'none',
  ) => sharing({ migStrategy, timeSlicing: { failRequestsGreaterThanOne: fail, resources } });
  const names = (built: ReturnType<typeof buildResources>) =>
    built.resources.map((r) => [r.name, r.sharing, r.failRequestsGreaterThanOne, r.devices.map((d) => d.id)]);

  it('selects GPUs and MIG devices by UUID and by index, and names what it cannot find', () => {
    const node = mixedNode();
    const [m0, m1] = node.gpus[0]!.migDevices;
    const entry = (devices: DeviceRef[]) =>
      ts(
        [{ name: 'nvidia.com/mig-2g.20gb', replicas: 2, devices: { type: 'list', devices } }],
        false,
        'mixed',
      );
    const mig2g = (built: ReturnType<typeof buildResources>) =>
      built.resources.find((r) => r.name === 'nvidia.com/mig-2g.20gb')!.devices.map((d) => d.id);
    const m2 = node.gpus[0]!.migDevices[2]!.uuid;
    expect(mig2g(buildResources(entry([{ type: 'uuid', uuid: m2 }]), node))).toEqual([
      `${m2}::0`,
      `${m2}::1`,
      m1!.uuid,
    ]);
    expect(mig2g(buildResources(entry([{ type: 'mig-index', gpu: 0, mig: 1 }]), node))).toEqual([
      `${m1!.uuid}::0`,
      `${m1!.uuid}::1`,
      m2,
    ]);
    expect(() => buildResources(entry([{ type: 'mig-index', gpu: 0, mig: 0 }]), node)).toThrow(
      new ResourceConfigError('sharing.timeSlicing.resources[0]: no matching device at index 0:0'),
    );
    expect(() => buildResources(entry([{ type: 'uuid', uuid: m0!.uuid }]), node)).toThrow(
      `sharing.timeSlicing.resources[0]: no matching device with UUID ${m0!.uuid}`,
    );
    const byGpuUuid = ts([
      {
        name: 'nvidia.com/gpu',
        replicas: 2,
        devices: { type: 'list', devices: [{ type: 'uuid', uuid: uuidOf(1) }] },
      },
    ]);
    expect(names(buildResources(byGpuUuid, linkedInventory(2)))[0]![3]).toEqual([
      `${uuidOf(1)}::0`,
      `${uuidOf(1)}::1`,
      uuidOf(0),
    ]);
    expect(() =>
      buildResources(
        ts([
          {
            name: 'nvidia.com/gpu',
            replicas: 2,
            devices: { type: 'list', devices: [{ type: 'index', index: 4 }] },
          },
        ]),
        linkedInventory(2),
      ),
    ).toThrow(new ResourceConfigError('sharing.timeSlicing.resources[0]: no matching device at index 4'));
  });

  it('a count equal to the GPUs on the node selects them all', () => {
    const built = buildResources(
      ts([{ name: 'nvidia.com/gpu', replicas: 2, devices: { type: 'count', count: 2 } }]),
      linkedInventory(2),
    );
    expect(names(built)).toEqual([
      [
        'nvidia.com/gpu',
        'time-slicing',
        false,
        [`${uuidOf(0)}::0`, `${uuidOf(0)}::1`, `${uuidOf(1)}::0`, `${uuidOf(1)}::1`],
      ],
    ]);
  });

  it('every GPU renamed: no empty resource is left under the old name, and no warning', () => {
    const built = buildResources(
      ts([
        { name: 'nvidia.com/gpu', rename: 'nvidia.com/gpu.shared', replicas: 2, devices: { type: 'all' } },
      ]),
      linkedInventory(1),
    );
    expect(names(built)).toEqual([
      ['nvidia.com/gpu.shared', 'time-slicing', false, [`${uuidOf(0)}::0`, `${uuidOf(0)}::1`]],
    ]);
    expect(built.warnings).toEqual([]);
  });

  it('failRequestsGreaterThanOne stays on a name whose unselected GPUs stay whole beside the replicas', () => {
    const built = buildResources(
      ts(
        [
          {
            name: 'nvidia.com/gpu',
            replicas: 2,
            devices: { type: 'list', devices: [{ type: 'index', index: 0 }] },
          },
        ],
        true,
      ),
      linkedInventory(2),
    );
    expect(names(built)).toEqual([
      ['nvidia.com/gpu', 'time-slicing', true, [`${uuidOf(0)}::0`, `${uuidOf(0)}::1`, uuidOf(1)]],
    ]);
  });

  it('failRequestsGreaterThanOne applies to time-sliced names only, not to split or whole ones', () => {
    const config = sharing({
      migStrategy: 'mixed',
      timeSlicing: {
        failRequestsGreaterThanOne: true,
        resources: [{ name: 'nvidia.com/mig-2g.20gb', replicas: 2, devices: { type: 'all' } }],
      },
      split: {
        resources: [
          { name: 'nvidia.com/gpu', count: 2, memoryScaling: 1, coreScaling: 1, devices: { type: 'all' } },
        ],
      },
    });
    expect(
      buildResources(config, mixedNode()).resources.map((r) => [
        r.name,
        r.sharing,
        r.failRequestsGreaterThanOne,
      ]),
    ).toEqual([
      ['nvidia.com/gpu', 'split', false],
      ['nvidia.com/mig-2g.20gb', 'time-slicing', true],
      ['nvidia.com/mig-3g.40gb', 'exclusive', false],
    ]);
  });

  it('MIG replicas renamed onto the whole GPUs’ name make it a time-sliced resource', () => {
    // GPU 0 whole, GPU 1 in MIG mode: nvidia.com/gpu is planned first, as exclusive.
    const g1 = gpu(1, { migEnabled: true });
    g1.migDevices = [mig(g1, 0, '3g.40gb', 40192)];
    const node: Inventory = { driverVersion: 'x', cudaDriverVersion: null, gpus: [gpu(0), g1], problems: [] };
    const m = g1.migDevices[0]!.uuid;
    const built = buildResources(
      ts(
        [{ name: 'nvidia.com/mig-3g.40gb', rename: 'nvidia.com/gpu', replicas: 2, devices: { type: 'all' } }],
        true,
        'mixed',
      ),
      node,
    );
    expect(names(built)).toEqual([
      ['nvidia.com/gpu', 'time-slicing', true, [uuidOf(0), `${m}::0`, `${m}::1`]],
    ]);
  });

  it('two entries selecting the same GPU: the first shares it, the second only what is left', () => {
    const list = (...indexes: number[]) => ({
      type: 'list' as const,
      devices: indexes.map((index) => ({ type: 'index' as const, index })),
    });
    const built = buildResources(
      ts([
        { name: 'nvidia.com/gpu', replicas: 2, devices: list(0, 1) },
        { name: 'nvidia.com/gpu', rename: 'nvidia.com/gpu.more', replicas: 3, devices: list(1, 2) },
      ]),
      linkedInventory(3),
    );
    expect(names(built)).toEqual([
      [
        'nvidia.com/gpu',
        'time-slicing',
        false,
        [`${uuidOf(0)}::0`, `${uuidOf(0)}::1`, `${uuidOf(1)}::0`, `${uuidOf(1)}::1`],
      ],
      [
        'nvidia.com/gpu.more',
        'time-slicing',
        false,
        [`${uuidOf(2)}::0`, `${uuidOf(2)}::1`, `${uuidOf(2)}::2`],
      ],
    ]);
  });

  it('a warning lists every resource the node has, or says it has none', () => {
    const entry = ts(
      [{ name: 'nvidia.com/mig-1g.5gb', replicas: 2, devices: { type: 'all' } }],
      false,
      'mixed',
    );
    expect(buildResources(entry, mixedNode()).warnings).toEqual([
      'sharing.timeSlicing.resources[0]: no nvidia.com/mig-1g.5gb devices on this node ' +
        '(resources here: nvidia.com/mig-3g.40gb, nvidia.com/mig-2g.20gb, nvidia.com/gpu)',
    ]);
    const empty: Inventory = { driverVersion: 'x', cudaDriverVersion: null, gpus: [], problems: [] };
    expect(buildResources(entry, empty)).toEqual({
      resources: [],
      warnings: [
        'sharing.timeSlicing.resources[0]: no nvidia.com/mig-1g.5gb devices on this node (resources here: none)',
      ],
    });
  });

  it('errors say what they are', () => {
    const tooMany = ts([{ name: 'nvidia.com/gpu', replicas: 2, devices: { type: 'count', count: 3 } }]);
    expect(() => buildResources(tooMany, linkedInventory(2))).toThrow(
      expect.objectContaining({ name: 'ResourceConfigError' }),
    );
    const g0 = gpu(0, { migEnabled: true });
    const node: Inventory = { driverVersion: 'x', cudaDriverVersion: null, gpus: [g0, gpu(1)], problems: [] };
    expect(() => buildResources(sharing({ migStrategy: 'single' }), node)).toThrow(
      expect.objectContaining({ name: 'MigStrategyError' }),
    );
  });
});

describe('buildResources: splitting MIG devices', () => {
  it('is refused with the way out', () => {
    const node = mixedNode();
    const config = sharing({
      migStrategy: 'mixed',
      split: {
        resources: [
          {
            name: 'nvidia.com/mig-3g.40gb',
            count: 2,
            memoryScaling: 1,
            coreScaling: 1,
            devices: { type: 'all' },
          },
        ],
      },
    });
    expect(() => buildResources(config, node)).toThrow(
      new ResourceConfigError(
        `sharing.split.resources[0]: split slices whole GPUs, but nvidia.com/mig-3g.40gb holds MIG devices here ` +
          `(${node.gpus[0]!.migDevices[0]!.uuid}); use time-slicing for MIG devices or migStrategy none`,
      ),
    );
  });
});

describe('targetsByResource', () => {
  it('orders GPUs by index whatever the inventory’s order', () => {
    const inventory: Inventory = {
      driverVersion: 'x',
      cudaDriverVersion: null,
      gpus: [gpu(2), gpu(0), gpu(1)],
      problems: [],
    };
    expect(
      targetsByResource(inventory, 'none')
        .get('nvidia.com/gpu')!
        .map((t) => t.uuid),
    ).toEqual([uuidOf(0), uuidOf(1), uuidOf(2)]);
  });

  it('single on a node with no GPU in MIG mode: the GPUs, whole', () => {
    expect(
      [...targetsByResource(linkedInventory(2), 'single')].map(([name, t]) => [name, t.map((x) => x.kind)]),
    ).toEqual([['nvidia.com/gpu', ['gpu', 'gpu']]]);
  });

  it('names MIG profiles as NVIDIA does: + attributes become .', () => {
    const g0 = gpu(0, { migEnabled: true });
    g0.migDevices = [mig(g0, 0, '1g.10gb+me', 9856), mig(g0, 1, '1c.2g.20gb', 19968)];
    const inventory: Inventory = { driverVersion: 'x', cudaDriverVersion: null, gpus: [g0], problems: [] };
    expect([...targetsByResource(inventory, 'mixed').keys()]).toEqual([
      'nvidia.com/mig-1g.10gb.me',
      'nvidia.com/mig-1c.2g.20gb',
    ]);
  });
});
