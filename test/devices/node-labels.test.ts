/**
 * GPU feature labels for each simulated node (native/mock-nvml/nodes) and sharing config, against
 * what gpu-feature-discovery writes for the same node and config. The expected values are worked out
 * from GFD v0.20's labelers (NVIDIA/k8s-device-plugin internal/lm at 1b826acc); the key and value
 * formats are those its expected-output files (tests/expected-output*.txt) accept, written here as
 * anchored patterns with the value sets meant there.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { EffectiveConfig } from '../../src/config/schema.js';
import type { Inventory } from '../../src/devices/inventory-types.js';
import {
  gpuFamily,
  type HostLabelFacts,
  nodeLabels,
  PCI_CLASS_3D,
  PCI_CLASS_VGA,
  sanitiseLabelValue,
} from '../../src/devices/node-labels.js';
import { mockNodePath } from '../../src/paths.js';
import { inventoryFromMockState } from '../../src/sim/state-inventory.js';
import { gpu, mig } from '../helpers/inventory.js';

type MockState = { devices: Record<string, unknown>[] } & Record<string, unknown>;

const stateOf = (node: string): MockState => JSON.parse(readFileSync(mockNodePath(node), 'utf8'));

function inventoryOf(state: MockState | string): Inventory {
  const converted = inventoryFromMockState(typeof state === 'string' ? stateOf(state) : state, 'test');
  if (!converted.ok) throw new Error(converted.error.join('\n'));
  return converted.value;
}

function configOf(text: string): EffectiveConfig {
  const parsed = parseConfig(text, 'test.yaml');
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value.config;
}

const compute = (inventory: Inventory): HostLabelFacts => ({
  machineType: 'ProLiant DL380 Gen10',
  pciClasses: new Map(inventory.gpus.map((g) => [g.uuid, PCI_CLASS_3D])),
});

function labelsOf(node: MockState | string, configText: string, lost: string[] = []) {
  const inventory = inventoryOf(node);
  return nodeLabels({
    inventory,
    config: configOf(configText),
    lostGpus: new Set(lost),
    host: compute(inventory),
  });
}

/** The driver and CUDA labels of every mock node (driver 580.95.05, CUDA 13.0). */
const VERSION_LABELS = {
  'nvidia.com/cuda.driver.major': '580',
  'nvidia.com/cuda.driver.minor': '95',
  'nvidia.com/cuda.driver.rev': '05',
  'nvidia.com/cuda.driver-version.major': '580',
  'nvidia.com/cuda.driver-version.minor': '95',
  'nvidia.com/cuda.driver-version.revision': '05',
  'nvidia.com/cuda.driver-version.full': '580.95.05',
  'nvidia.com/cuda.runtime.major': '13',
  'nvidia.com/cuda.runtime.minor': '0',
  'nvidia.com/cuda.runtime-version.major': '13',
  'nvidia.com/cuda.runtime-version.minor': '0',
  'nvidia.com/cuda.runtime-version.full': '13.0',
  'nvidia.com/gpu.machine': 'ProLiant-DL380-Gen10',
  'nvidia.com/gpu.mode': 'compute',
  'nvidia.com/mps.capable': 'false',
};

const A100_40 = {
  'nvidia.com/gpu.memory': '40960',
  'nvidia.com/gpu.family': 'ampere',
  'nvidia.com/gpu.compute.major': '8',
  'nvidia.com/gpu.compute.minor': '0',
  'nvidia.com/mig.capable': 'true',
};

/** The mock's A100 MIG devices as NVML describes them (memory, SMs, slices, engines). */
const MIG_2G_10GB = {
  memory: '9856',
  multiprocessors: '28',
  'slices.gi': '2',
  'slices.ci': '2',
  'engines.copy': '2',
  'engines.decoder': '1',
  'engines.encoder': '0',
  'engines.jpeg': '0',
  'engines.ofa': '0',
};

const prefixed = (prefix: string, labels: Record<string, string>) =>
  Object.fromEntries(Object.entries(labels).map(([k, v]) => [`${prefix}.${k}`, v]));

describe('GFD labels of the simulated nodes', () => {
  it('single-t4, NVIDIA defaults', () => {
    expect(labelsOf('single-t4', 'version: v1')).toEqual({
      labels: {
        ...VERSION_LABELS,
        'nvidia.com/gpu.product': 'Tesla-T4',
        'nvidia.com/gpu.count': '1',
        'nvidia.com/gpu.replicas': '1',
        'nvidia.com/gpu.sharing-strategy': 'none',
        'nvidia.com/gpu.memory': '15360',
        'nvidia.com/gpu.family': 'turing',
        'nvidia.com/gpu.compute.major': '7',
        'nvidia.com/gpu.compute.minor': '5',
        'nvidia.com/mig.capable': 'false',
      },
      warnings: [],
    });
  });

  it('dgx-a100, time-slicing: -SHARED product, physical count, per-GPU replicas', () => {
    const { labels } = labelsOf(
      'dgx-a100',
      'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB-SHARED',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.replicas': '4',
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
      'nvidia.com/gpu.memory': '81920',
      'nvidia.com/mig.capable': 'true',
    });
  });

  it('renameByDefault: replicas and strategy stay, the product has no -SHARED', () => {
    const { labels } = labelsOf(
      'single-t4',
      'sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4}]}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'Tesla-T4',
      'nvidia.com/gpu.replicas': '4',
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
    });
  });

  it('mixed-mig, strategy none: one model counted whole, MIG enabled or not; no mig.strategy', () => {
    expect(labelsOf('mixed-mig', 'version: v1').labels).toEqual({
      ...VERSION_LABELS,
      ...A100_40,
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB',
      'nvidia.com/gpu.count': '2',
      'nvidia.com/gpu.replicas': '1',
      'nvidia.com/gpu.sharing-strategy': 'none',
    });
  });

  it('mixed-mig, strategy mixed: full-GPU labels plus one set per MIG profile', () => {
    expect(labelsOf('mixed-mig', 'flags: {migStrategy: mixed}').labels).toEqual({
      ...VERSION_LABELS,
      ...A100_40,
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB',
      'nvidia.com/gpu.count': '2',
      'nvidia.com/gpu.replicas': '1',
      'nvidia.com/gpu.sharing-strategy': 'none',
      'nvidia.com/mig.strategy': 'mixed',
      ...prefixed('nvidia.com/mig-3g.20gb', {
        product: 'NVIDIA-A100-SXM4-40GB-MIG-3g.20gb',
        count: '1',
        replicas: '1',
        'sharing-strategy': 'none',
        memory: '19968',
        multiprocessors: '42',
        'slices.gi': '3',
        'slices.ci': '3',
        'engines.copy': '3',
        'engines.decoder': '2',
        'engines.encoder': '0',
        'engines.jpeg': '0',
        'engines.ofa': '0',
      }),
      ...prefixed('nvidia.com/mig-2g.10gb', {
        product: 'NVIDIA-A100-SXM4-40GB-MIG-2g.10gb',
        count: '2',
        replicas: '1',
        'sharing-strategy': 'none',
        ...MIG_2G_10GB,
      }),
    });
  });

  it('mixed, a time-sliced MIG profile: its own replicas and -SHARED', () => {
    const { labels } = labelsOf(
      'mixed-mig',
      'flags: {migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/mig-2g.10gb, replicas: 3}]}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB',
      'nvidia.com/gpu.replicas': '1',
      'nvidia.com/mig-2g.10gb.product': 'NVIDIA-A100-SXM4-40GB-MIG-2g.10gb-SHARED',
      'nvidia.com/mig-2g.10gb.replicas': '3',
      'nvidia.com/mig-2g.10gb.sharing-strategy': 'time-slicing',
      'nvidia.com/mig-3g.20gb.sharing-strategy': 'none',
    });
  });

  it('single, one profile on every GPU: nvidia.com/gpu.* describe the MIG devices', () => {
    const state = stateOf('mixed-mig');
    const [first, second] = state.devices as [Record<string, unknown>, Record<string, unknown>];
    first.migDevices = (first.migDevices as { profile: string }[]).filter((m) => m.profile === '2g.10gb');
    second.migEnabled = true;
    second.migDevices = [
      {
        uuid: 'MIG-00000000-0000-0000-0000-00000000000a',
        giId: 3,
        profile: '2g.10gb',
        memoryMiB: 9856,
        multiprocessors: 28,
      },
    ];
    const { labels } = labelsOf(state, 'flags: {migStrategy: single}');
    expectGfdFormats(labels, 'expected-output-mig-single.txt');
    expect(labels).toEqual({
      ...VERSION_LABELS,
      ...A100_40,
      'nvidia.com/mig.strategy': 'single',
      ...prefixed('nvidia.com/gpu', {
        product: 'NVIDIA-A100-SXM4-40GB-MIG-2g.10gb',
        count: '3',
        replicas: '1',
        'sharing-strategy': 'none',
        ...MIG_2G_10GB,
      }),
    });
  });

  it("single on a node it does not fit: GFD's -MIG-INVALID labels, count 0", () => {
    expect(labelsOf('mixed-mig', 'flags: {migStrategy: single}').labels).toMatchObject({
      'nvidia.com/mig.strategy': 'single',
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB-MIG-INVALID',
      'nvidia.com/gpu.count': '0',
      'nvidia.com/gpu.replicas': '0',
      'nvidia.com/gpu.sharing-strategy': '',
      'nvidia.com/gpu.memory': '0',
      'nvidia.com/gpu.family': 'ampere',
    });
  });

  it('split: shared like time-slicing for GFD, and our own slice labels', () => {
    const { labels } = labelsOf(
      'dgx-a100',
      'sharing: {split: {resources: [{name: nvidia.com/gpu, count: 4}]}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB-SHARED',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.replicas': '4',
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
      'vgpu-agent.io/gpu.sharing-strategy': 'split',
      'vgpu-agent.io/gpu.slices': '4',
      'vgpu-agent.io/gpu.slice.memory': '20480',
      'vgpu-agent.io/gpu.slice.cores': '25',
    });
  });

  it('split renamed, on two of the GPUs: labels under the advertised name, no -SHARED', () => {
    const { labels } = labelsOf(
      'dgx-a100',
      'sharing: {split: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/vgpu, count: 10, devices: [0, 1]}]}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB',
      'nvidia.com/gpu.replicas': '10',
      'vgpu-agent.io/vgpu.slices': '10',
      'vgpu-agent.io/vgpu.slice.memory': '8192',
      'vgpu-agent.io/vgpu.slice.cores': '10',
    });
    expect(Object.keys(labels).filter((k) => k.startsWith('vgpu-agent.io/gpu.'))).toEqual([]);
  });

  it('HAMi mode: shared like time-slicing for GFD (replicas = deviceSplitCount), and our own HAMi labels', () => {
    const { labels } = labelsOf(
      'dgx-a100',
      'sharing: {hami: {deviceSplitCount: 5, deviceMemoryScaling: 1.5, deviceCoreScaling: 2}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB-SHARED',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.memory': '81920',
      'nvidia.com/gpu.replicas': '5',
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
      'vgpu-agent.io/gpu.sharing-strategy': 'hami',
      'vgpu-agent.io/gpu.split-count': '5',
      'vgpu-agent.io/gpu.memory-scaling': '1.5',
      'vgpu-agent.io/gpu.core-scaling': '2',
    });
    expect(Object.keys(labels).filter((k) => k.startsWith('vgpu-agent.io/gpu.slice'))).toEqual([]);
  });

  it("HAMi mode under its own resource name: labels under that name, no -SHARED (as a rename); HAMi's defaults", () => {
    const { labels } = labelsOf('single-t4', 'sharing: {hami: {resourceCountName: nvidia.com/vgpu}}');
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'Tesla-T4',
      'nvidia.com/gpu.replicas': '10',
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
      'vgpu-agent.io/vgpu.sharing-strategy': 'hami',
      'vgpu-agent.io/vgpu.split-count': '10',
      'vgpu-agent.io/vgpu.memory-scaling': '1',
      'vgpu-agent.io/vgpu.core-scaling': '1',
    });
    expect(Object.keys(labels).filter((k) => k.startsWith('vgpu-agent.io/gpu.'))).toEqual([]);
  });

  it('HAMi mode with one replica per GPU: not shared for GFD, still HAMi for us', () => {
    const { labels } = labelsOf('single-t4', 'sharing: {hami: {deviceSplitCount: 1}}');
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'Tesla-T4',
      'nvidia.com/gpu.replicas': '1',
      'nvidia.com/gpu.sharing-strategy': 'none',
      'vgpu-agent.io/gpu.sharing-strategy': 'hami',
      'vgpu-agent.io/gpu.split-count': '1',
    });
  });

  it('a lost GPU is not counted; with every GPU lost no GPU label is left', () => {
    const inventory = inventoryOf('dgx-a100');
    const uuids = inventory.gpus.map((g) => g.uuid);
    expect(labelsOf('dgx-a100', 'version: v1', [uuids[3]!]).labels['nvidia.com/gpu.count']).toBe('7');
    expect(labelsOf('dgx-a100', 'version: v1', uuids)).toEqual({ labels: {}, warnings: [] });
  });
});

describe('GFD rules', () => {
  it('sanitises like GFD: drops other characters, joins words with -', () => {
    expect(sanitiseLabelValue('NVIDIA GeForce RTX 4090 (rev a1)')).toBe('NVIDIA-GeForce-RTX-4090-rev-a1');
    expect(sanitiseLabelValue('  Tesla   V100-SXM2-16GB ')).toBe('Tesla-V100-SXM2-16GB');
  });

  it.each([
    [1, 3, 'tesla'],
    [2, 1, 'fermi'],
    [3, 7, 'kepler'],
    [5, 2, 'maxwell'],
    [6, 1, 'pascal'],
    [7, 0, 'volta'],
    [7, 5, 'turing'],
    [8, 6, 'ampere'],
    [8, 9, 'ada-lovelace'],
    [9, 0, 'hopper'],
    [10, 0, 'blackwell'],
    [12, 0, 'blackwell'],
    [13, 0, 'rubin'],
    [11, 0, 'undefined'],
  ])('compute capability %i.%i is family %s', (major, minor, family) => {
    expect(gpuFamily(major, minor)).toBe(family);
  });

  it('gpu.mode: graphics for VGA class, unknown when GPUs differ or a class is unreadable', () => {
    const inventory: Inventory = {
      driverVersion: '580.95.05',
      cudaDriverVersion: null,
      gpus: [gpu(0), gpu(1)],
      problems: [],
    };
    const mode = (classes: (number | null)[]) =>
      nodeLabels({
        inventory,
        config: configOf('version: v1'),
        lostGpus: new Set(),
        host: { machineType: null, pciClasses: new Map(inventory.gpus.map((g, i) => [g.uuid, classes[i]!])) },
      }).labels['nvidia.com/gpu.mode'];
    expect(mode([PCI_CLASS_VGA, PCI_CLASS_VGA])).toBe('graphics');
    expect(mode([PCI_CLASS_VGA, PCI_CLASS_3D])).toBe('unknown');
    expect(mode([PCI_CLASS_3D, null])).toBe('unknown');
  });

  it('several models: the lowest-index GPU model wins, counted alone; no CUDA: no runtime labels', () => {
    const inventory: Inventory = {
      driverVersion: '550.54',
      cudaDriverVersion: null,
      gpus: [gpu(0, { name: 'Tesla T4', memoryMiB: 15360 }), gpu(1), gpu(2)],
      problems: [],
    };
    const { labels } = nodeLabels({
      inventory,
      config: configOf('version: v1'),
      lostGpus: new Set(),
      host: { machineType: null, pciClasses: new Map() },
    });
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'Tesla-T4',
      'nvidia.com/gpu.count': '1',
      'nvidia.com/gpu.memory': '15360',
      'nvidia.com/gpu.machine': 'unknown',
      'nvidia.com/cuda.driver.rev': '',
      'nvidia.com/cuda.driver-version.full': '550.54',
    });
    expect(Object.keys(labels).filter((k) => k.includes('runtime'))).toEqual([]);
  });

  it('leaves out a value Kubernetes would refuse, saying which', () => {
    const inventory: Inventory = {
      driverVersion: '580.95.05',
      cudaDriverVersion: '13.0',
      gpus: [gpu(0, { name: `NVIDIA ${'X'.repeat(70)}` })],
      problems: [],
    };
    const result = nodeLabels({
      inventory,
      config: configOf('version: v1'),
      lostGpus: new Set(),
      host: { machineType: null, pciClasses: new Map() },
    });
    expect(result.labels['nvidia.com/gpu.product']).toBeUndefined();
    expect(result.warnings).toEqual([expect.stringMatching(/^label nvidia.com\/gpu.product left out: /)]);
  });
});

/**
 * The labels GFD's expected-output files accept, by file: a GFD label line must match one of them.
 * `gfd.timestamp` is left out on purpose (docs/labels.md says why).
 */
const NUMBER = '[0-9]+';
const SHARING = '(none|mps|time-slicing)';
const GFD_COMMON: [string, string][] = [
  ['cuda\\.driver\\.major', NUMBER],
  ['cuda\\.driver\\.minor', NUMBER],
  ['cuda\\.driver\\.rev', '[0-9]*'],
  ['cuda\\.runtime\\.major', NUMBER],
  ['cuda\\.runtime\\.minor', NUMBER],
  ['cuda\\.driver-version\\.major', NUMBER],
  ['cuda\\.driver-version\\.minor', NUMBER],
  ['cuda\\.driver-version\\.revision', '[0-9]*'],
  ['cuda\\.driver-version\\.full', '[0-9]+\\.[0-9]+\\.[0-9]+'],
  ['cuda\\.runtime-version\\.major', NUMBER],
  ['cuda\\.runtime-version\\.minor', NUMBER],
  ['cuda\\.runtime-version\\.full', '[0-9]+\\.[0-9]+'],
  ['gpu\\.machine', '.*'],
  ['gpu\\.count', NUMBER],
  ['gpu\\.replicas', NUMBER],
  ['gpu\\.sharing-strategy', SHARING],
  ['gpu\\.product', '[A-Za-z0-9_.-]+'],
  ['gpu\\.memory', NUMBER],
  ['gpu\\.family', '[a-z-]+'],
  ['gpu\\.mode', '(unknown|compute|graphics)'],
  ['mig\\.capable', '(true|false)'],
  ['gpu\\.compute\\.major', NUMBER],
  ['gpu\\.compute\\.minor', NUMBER],
  ['mps\\.capable', '(true|false)'],
];
const MIG_ATTRIBUTES = ['multiprocessors', 'engines\\.(copy|decoder|encoder|jpeg|ofa)', 'slices\\.(gi|ci)'];
const GFD_EXPECTED: Record<string, [string, string][]> = {
  'expected-output-mig-none.txt': GFD_COMMON,
  'expected-output-mig-single.txt': [
    ...GFD_COMMON,
    ['mig\\.strategy', '[a-z_-]+'],
    ...MIG_ATTRIBUTES.map((a): [string, string] => [`gpu\\.${a}`, NUMBER]),
  ],
  'expected-output-mig-mixed.txt': [
    ...GFD_COMMON,
    ['mig\\.strategy', '[a-z_-]+'],
    ...['product', 'count', 'replicas', 'sharing-strategy', 'memory', ...MIG_ATTRIBUTES].map(
      (a): [string, string] => [
        `mig-[0-9]+g\\.[0-9]+gb\\.${a}`,
        a === 'product' ? '[A-Za-z0-9_.-]+' : a === 'sharing-strategy' ? SHARING : NUMBER,
      ],
    ),
  ],
};

describe("GFD's expected-output formats", () => {
  it.each([
    ['single-t4', 'version: v1', 'expected-output-mig-none.txt'],
    [
      'dgx-a100',
      'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}',
      'expected-output-mig-none.txt',
    ],
    ['mixed-mig', 'flags: {migStrategy: mixed}', 'expected-output-mig-mixed.txt'],
  ])('%s with %s: every label matches %s and every pattern is used', (node, config, file) => {
    expectGfdFormats(labelsOf(node, config).labels, file);
  });
});

function expectGfdFormats(labels: Record<string, string>, file: string): void {
  const patterns = GFD_EXPECTED[file]!.map(([key, value]) => new RegExp(`^nvidia\\.com/${key}=${value}$`));
  const lines = Object.entries(labels)
    .filter(([key]) => key.startsWith('nvidia.com/'))
    .map(([key, value]) => `${key}=${value}`);
  for (const line of lines)
    expect(
      patterns.some((p) => p.test(line)),
      line,
    ).toBe(true);
  for (const pattern of patterns)
    expect(
      lines.some((l) => pattern.test(l)),
      String(pattern),
    ).toBe(true);
}

/** nodeLabels on plain GPUs (as a test builds them) with 3D-class PCI readings and no machine type. */
function plainLabels(gpus: Inventory['gpus'], configText = 'version: v1', driverVersion = '580.95.05') {
  return nodeLabels({
    inventory: { driverVersion, cudaDriverVersion: '13.0', gpus, problems: [] },
    config: configOf(configText),
    lostGpus: new Set(),
    host: { machineType: null, pciClasses: new Map(gpus.map((g) => [g.uuid, PCI_CLASS_3D])) },
  });
}

/** mixed-mig with GPU 0 holding only its 2g.10gb devices, unless `bothProfiles`, and GPU 1 as given. */
function singleMigState(gpu1: 'disabled' | 'empty' | '2g.10gb', bothProfiles = false): MockState {
  const state = stateOf('mixed-mig');
  const [first, second] = state.devices as [Record<string, unknown>, Record<string, unknown>];
  if (!bothProfiles)
    first.migDevices = (first.migDevices as { profile: string }[]).filter((m) => m.profile === '2g.10gb');
  if (gpu1 !== 'disabled') {
    second.migEnabled = true;
    second.migDevices =
      gpu1 === 'empty'
        ? []
        : [
            {
              uuid: 'MIG-00000000-0000-0000-0000-00000000000a',
              giId: 3,
              profile: '2g.10gb',
              memoryMiB: 9856,
            },
          ];
  }
  return state;
}

describe('GFD labels, case by case', () => {
  it('label keys come out sorted', () => {
    const keys = Object.keys(labelsOf('dgx-a100', 'flags: {migStrategy: mixed}').labels);
    expect(keys).toEqual([...keys].sort());
  });

  it('GPUs listed out of index order: still the lowest-index GPU model wins', () => {
    const { labels } = plainLabels([gpu(2), gpu(1), gpu(0, { name: 'Tesla T4', memoryMiB: 15360 }), gpu(3)]);
    expect(labels).toMatchObject({ 'nvidia.com/gpu.product': 'Tesla-T4', 'nvidia.com/gpu.count': '1' });
  });

  it('mig.capable is true when any GPU is MIG-capable', () => {
    const { labels } = plainLabels([gpu(0, { name: 'Tesla T4', migCapable: false }), gpu(1)]);
    expect(labels['nvidia.com/mig.capable']).toBe('true');
  });

  it.each(['580', '580.95.05.1'])(
    'driver version %s (not X.Y[.Z]): driver labels left out, with a warning',
    (v) => {
      const { labels, warnings } = plainLabels([gpu(0)], 'version: v1', v);
      expect(warnings).toEqual([`driver labels left out: version "${v}" is not X.Y[.Z]`]);
      expect(Object.keys(labels).filter((k) => k.includes('cuda.driver'))).toEqual([]);
      expect(labels['nvidia.com/cuda.runtime-version.full']).toBe('13.0');
    },
  );

  it('no memory reading: no gpu.memory; no compute capability (or 0.x): no family or compute labels', () => {
    for (const computeCapability of [null, { major: 0, minor: 0 }]) {
      const { labels, warnings } = plainLabels([gpu(0, { memoryMiB: 0, computeCapability })]);
      expect(warnings).toEqual([]);
      expect(labels['nvidia.com/gpu.product']).toBe('NVIDIA-A100-SXM4-80GB');
      expect(Object.keys(labels).filter((k) => /gpu\.(memory|family|compute)/.test(k))).toEqual([]);
    }
  });

  it('a model name with nothing label-safe in it: a time-sliced product is SHARED, without a stray dash', () => {
    const { labels, warnings } = plainLabels(
      [gpu(0, { name: '®™' })],
      'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}',
    );
    expect(warnings).toEqual([]);
    expect(labels['nvidia.com/gpu.product']).toBe('SHARED');
  });

  it('gpu.mode is unknown when no GPU class is readable or the class is neither VGA nor 3D', () => {
    const mode = (pciClass: number | null) =>
      nodeLabels({
        inventory: {
          driverVersion: '580.95.05',
          cudaDriverVersion: null,
          gpus: [gpu(0), gpu(1)],
          problems: [],
        },
        config: configOf('version: v1'),
        lostGpus: new Set(),
        host: { machineType: null, pciClasses: new Map([0, 1].map((i) => [gpu(i).uuid, pciClass])) },
      }).labels['nvidia.com/gpu.mode'];
    expect(mode(null)).toBe('unknown');
    expect(mode(0x038000)).toBe('unknown');
  });

  it('every GPU in MIG mode (mixed): the full-GPU labels are "without sharing", even when nvidia.com/gpu is time-sliced', () => {
    const { labels } = labelsOf(
      singleMigState('2g.10gb'),
      'flags: {migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB',
      'nvidia.com/gpu.count': '2',
      'nvidia.com/gpu.replicas': '0',
      'nvidia.com/gpu.sharing-strategy': 'none',
      'nvidia.com/mig-2g.10gb.count': '3',
    });
  });

  it('a MIG profile with an attribute (+me) is labelled mig-<profile>.me, as NVIDIA names the resource', () => {
    const parent = gpu(0, { migEnabled: true });
    parent.migDevices = [mig(parent, 0, '1g.10gb+me', 9856)];
    const { labels } = plainLabels([parent], 'flags: {migStrategy: mixed}');
    expect(labels['nvidia.com/mig-1g.10gb.me.count']).toBe('1');
  });

  it('single on a node without MIG enabled is none: whole-GPU labels, no warning', () => {
    const single = labelsOf('dgx-a100', 'flags: {migStrategy: single}');
    const none = labelsOf('dgx-a100', 'version: v1');
    expect(single).toEqual({
      labels: { ...none.labels, 'nvidia.com/mig.strategy': 'single' },
      warnings: [],
    });
  });

  it.each([
    ['a MIG-enabled GPU without MIG devices', singleMigState('empty')],
    ['MIG enabled on one GPU only', singleMigState('disabled')],
    ['two MIG profiles', singleMigState('2g.10gb', true)],
  ])('single with %s: -MIG-INVALID, count 0, and no warning', (_, state) => {
    const { labels, warnings } = labelsOf(state, 'flags: {migStrategy: single}');
    expect(labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB-MIG-INVALID',
      'nvidia.com/gpu.count': '0',
    });
    expect(warnings).toEqual([]);
  });
});

describe('split and HAMi labels, case by case', () => {
  it('split on some GPUs under the GPUs own name: slices per sliced GPU, not per GPU on the node', () => {
    const { labels } = labelsOf(
      'dgx-a100',
      'sharing: {split: {resources: [{name: nvidia.com/gpu, count: 10, devices: [0, 1]}]}}',
    );
    expect(labels).toMatchObject({
      'vgpu-agent.io/gpu.sharing-strategy': 'split',
      'vgpu-agent.io/gpu.slices': '10',
      'vgpu-agent.io/gpu.slice.memory': '8192',
      'vgpu-agent.io/gpu.slice.cores': '10',
    });
  });

  it('several split entries for one name: GFD replicas from the first, the most slices, the smallest slice', () => {
    const { labels } = labelsOf(
      'dgx-a100',
      'sharing: {split: {resources: [{name: nvidia.com/gpu, count: 2, devices: [0, 1, 2]}, {name: nvidia.com/gpu, count: 4, devices: [3, 4, 5, 6, 7]}]}}',
    );
    expect(labels).toMatchObject({
      'nvidia.com/gpu.replicas': '2',
      'vgpu-agent.io/gpu.slices': '4',
      'vgpu-agent.io/gpu.slice.memory': '20480',
      'vgpu-agent.io/gpu.slice.cores': '25',
    });
  });

  it('a label key too long for Kubernetes is left out with a warning naming it', () => {
    const name = `v${'x'.repeat(51)}`; // 52 characters: `<name>.slices` fits in 63, `.slice.cores` does not
    const { labels, warnings } = labelsOf(
      'single-t4',
      `sharing: {split: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/${name}, count: 2}]}}`,
    );
    expect(labels[`vgpu-agent.io/${name}.slices`]).toBe('2');
    expect(warnings).toEqual(
      ['sharing-strategy', 'slice.cores', 'slice.memory'].map(
        (suffix) => `label vgpu-agent.io/${name}.${suffix} left out: not a valid label key`,
      ),
    );
  });

  it('a split or HAMi config this node cannot build: our labels left out with the reason, GFD labels kept', () => {
    const split = labelsOf(
      'single-t4',
      'sharing: {split: {resources: [{name: nvidia.com/gpu, count: 2, devices: [3]}]}}',
    );
    expect(split.warnings).toEqual([
      'split labels left out: sharing.split.resources[0]: no matching device at index 3',
    ]);
    expect(split.labels['nvidia.com/gpu.product']).toBe('Tesla-T4-SHARED');
    const hami = labelsOf('single-t4', 'flags: {migStrategy: mixed}\nsharing: {hami: {}}');
    expect(hami.warnings).toEqual([
      'HAMi labels left out: sharing.hami shares whole GPUs: flags.migStrategy must be none (got mixed)',
    ]);
  });
});
