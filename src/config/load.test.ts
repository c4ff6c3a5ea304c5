import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import YAML from 'yaml';
import { formatIssue } from './errors.js';
import { configHash } from './hash.js';
import { loadConfigFile, parseConfig } from './load.js';
import type { EffectiveConfig } from './schema.js';

function parse(text: string) {
  const result = parseConfig(text, 'config.yaml');
  return result.ok
    ? { config: result.value.config, warnings: result.value.warnings }
    : { errors: result.error.map(formatIssue) };
}

const errorsOf = (text: string) => parse(text).errors;

const DEFAULTS: EffectiveConfig = {
  version: 'v1',
  flags: {
    migStrategy: 'none',
    failOnInitError: true,
    nvidiaDriverRoot: '/',
    nvidiaDevRoot: '/',
    gdrcopyEnabled: false,
    gdsEnabled: false,
    mofedEnabled: false,
    deviceDiscoveryStrategy: 'auto',
    plugin: {
      passDeviceSpecs: false,
      deviceListStrategy: ['envvar'],
      deviceIDStrategy: 'uuid',
      cdiAnnotationPrefix: 'cdi.k8s.io/',
      cdiKind: 'nvidia.com/gpu',
      sharedDevicesAllocationPolicy: 'distributed',
    },
  },
  sharing: {
    timeSlicing: { renameByDefault: false, failRequestsGreaterThanOne: false, resources: [] },
    split: { resources: [], hookPath: '/usr/local/vgpu' },
    hami: null,
  },
  health: { enabled: true, disabledXids: [13, 31, 43, 45, 68, 109], recoverAfterSeconds: 300 },
};

describe('defaults', () => {
  test.each([['version: v1'], ['{}'], ['flags: {}\nsharing: {}\nhealth: {}']])(
    '%j gives every default',
    (text) => {
      expect(parse(text)).toEqual({ config: DEFAULTS, warnings: [] });
    },
  );

  test('the dev root follows the driver root unless set', () => {
    expect(parse('flags:\n  nvidiaDriverRoot: /run/nvidia/driver\n').config?.flags).toMatchObject({
      nvidiaDriverRoot: '/run/nvidia/driver',
      nvidiaDevRoot: '/run/nvidia/driver',
    });
    expect(
      parse('flags:\n  nvidiaDriverRoot: /run/nvidia/driver\n  nvidiaDevRoot: ""\n').config?.flags
        .nvidiaDevRoot,
    ).toBe('/run/nvidia/driver');
    expect(
      parse('flags:\n  nvidiaDriverRoot: /run/nvidia/driver\n  nvidiaDevRoot: /\n').config?.flags
        .nvidiaDevRoot,
    ).toBe('/');
  });

  test('health.disabledXids given in the file replaces the default list (sorted, deduplicated)', () => {
    expect(parse('health:\n  disabledXids: [79, 13, 79]\n').config?.health.disabledXids).toEqual([13, 79]);
  });

  test.each([
    [
      'an empty document',
      '',
      'config.yaml: the document is empty (write "version: v1" for the default configuration)',
    ],
    [
      'a comment only',
      '# nothing\n',
      'config.yaml: the document is empty (write "version: v1" for the default configuration)',
    ],
    [
      'a list',
      '- a\n- b\n',
      'config.yaml:1:1: json: cannot unmarshal array into Go value of type v1.Config (expected a mapping, got a list)',
    ],
    [
      'a scalar',
      'v1\n',
      'config.yaml:1:1: json: cannot unmarshal string into Go value of type v1.Config (expected a mapping, got "v1")',
    ],
  ])('%s is an error', (_what, text, error) => {
    expect(errorsOf(text)).toEqual([error]);
  });
});

describe('an NVIDIA file loads unchanged', () => {
  // Every key of NVIDIA's v1 format (api/config/v1), as an NVIDIA user might have it in a ConfigMap.
  const NVIDIA_FILE = `
version: v1
flags:
  migStrategy: "mixed"
  failOnInitError: false
  nvidiaDriverRoot: "/run/nvidia/driver"
  nvidiaDevRoot: "/"
  mpsRoot: "/run/nvidia/mps"
  gdsEnabled: true
  gdrcopyEnabled: false
  mofedEnabled: false
  useNodeFeatureAPI: true
  deviceDiscoveryStrategy: nvml
  plugin:
    passDeviceSpecs: true
    deviceListStrategy: [envvar, cdi-annotations]
    deviceIDStrategy: index
    cdiAnnotationPrefix: cdi.k8s.io/
    nvidiaCTKPath: /usr/local/nvidia/toolkit/nvidia-ctk
    containerDriverRoot: /driver-root
    sharedDevicesAllocationPolicy: packed
  gfd:
    oneshot: false
    noTimestamp: false
    sleepInterval: 60s
    outputFile: /etc/kubernetes/node-feature-discovery/features.d/gfd
    machineTypeFile: /sys/class/dmi/id/product_name
resources:
  gpus:
  - pattern: "*"
    name: gpu
  mig:
  - pattern: "1g.5gb"
    name: mig-1g.5gb
sharing:
  timeSlicing:
    renameByDefault: true
    failRequestsGreaterThanOne: true
    resources:
    - name: nvidia.com/gpu
      replicas: 10
    - name: nvidia.com/mig-1g.5gb
      replicas: 2
      rename: mig-small
      devices: ["0:0", "0:1"]
imex:
  channelIDs: []
  required: false
`;

  test('with the effective config and one warning per key without effect', () => {
    expect(parse(NVIDIA_FILE)).toEqual({
      config: {
        version: 'v1',
        flags: {
          migStrategy: 'mixed',
          failOnInitError: false,
          nvidiaDriverRoot: '/run/nvidia/driver',
          nvidiaDevRoot: '/',
          gdrcopyEnabled: false,
          gdsEnabled: true,
          mofedEnabled: false,
          deviceDiscoveryStrategy: 'nvml',
          plugin: {
            passDeviceSpecs: true,
            deviceListStrategy: ['envvar', 'cdi-annotations'],
            deviceIDStrategy: 'index',
            cdiAnnotationPrefix: 'cdi.k8s.io/',
            cdiKind: 'nvidia.com/gpu',
            sharedDevicesAllocationPolicy: 'packed',
          },
        },
        sharing: {
          timeSlicing: {
            renameByDefault: true,
            failRequestsGreaterThanOne: true,
            resources: [
              {
                name: 'nvidia.com/gpu',
                rename: 'nvidia.com/gpu.shared',
                devices: { type: 'all' },
                replicas: 10,
              },
              {
                name: 'nvidia.com/mig-1g.5gb',
                rename: 'nvidia.com/mig-small',
                devices: {
                  type: 'list',
                  devices: [
                    { type: 'mig-index', gpu: 0, mig: 0 },
                    { type: 'mig-index', gpu: 0, mig: 1 },
                  ],
                },
                replicas: 2,
              },
            ],
          },
          split: { resources: [], hookPath: '/usr/local/vgpu' },
          hami: null,
        },
        health: DEFAULTS.health,
      },
      warnings: [
        'config.yaml: flags.mpsRoot: no effect: MPS is not supported by vgpu-agent',
        'config.yaml: flags.useNodeFeatureAPI: used by gpu-feature-discovery only; no effect in vgpu-agent',
        'config.yaml: flags.plugin.nvidiaCTKPath: no effect: vgpu-agent does not generate CDI specs (create one with `nvidia-ctk cdi generate` or the GPU operator)',
        'config.yaml: flags.plugin.containerDriverRoot: no effect: vgpu-agent does not generate CDI specs (create one with `nvidia-ctk cdi generate` or the GPU operator)',
        'config.yaml: flags.gfd: used by gpu-feature-discovery only; no effect in vgpu-agent',
        'config.yaml: resources: ignored, as by NVIDIA: custom resource names are not supported; the default names nvidia.com/gpu and nvidia.com/mig-<profile> apply',
        'config.yaml: imex: no effect: IMEX channels are not supported by vgpu-agent',
      ],
    });
  });

  test('the same file as JSON gives the same config, warnings and hash', () => {
    const fromYaml = parseConfig(NVIDIA_FILE, 'config.yaml');
    const fromJson = parseConfig(JSON.stringify(YAML.parse(NVIDIA_FILE), null, 2), 'config.yaml');
    expect(fromJson).toEqual(fromYaml);
    expect(fromJson.ok && configHash(fromJson.value.config)).toBe(
      fromYaml.ok && configHash(fromYaml.value.config),
    );
  });

  test("the README's time-slicing example", () => {
    const text =
      'version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 10\n';
    expect(parse(text).config?.sharing.timeSlicing).toEqual({
      renameByDefault: false,
      failRequestsGreaterThanOne: false,
      resources: [{ name: 'nvidia.com/gpu', rename: null, devices: { type: 'all' }, replicas: 10 }],
    });
  });

  test('anchors, aliases and << merge keys (go-yaml v2 resolves them too)', () => {
    const text =
      'sharing:\n  timeSlicing:\n    resources:\n    - &gpu {name: gpu, replicas: 4}\n    - {<<: *gpu, name: mig-1g.5gb}\n';
    expect(parse(text).config?.sharing.timeSlicing.resources.map((r) => [r.name, r.replicas])).toEqual([
      ['nvidia.com/gpu', 4],
      ['nvidia.com/mig-1g.5gb', 4],
    ]);
  });

  test("YAML 1.1 booleans, which NVIDIA's go-yaml v2 reads as booleans, are booleans", () => {
    expect(
      parse('flags:\n  failOnInitError: no\n  gdsEnabled: yes\n  plugin:\n    passDeviceSpecs: on\n').config
        ?.flags,
    ).toMatchObject({
      failOnInitError: false,
      gdsEnabled: true,
      plugin: { passDeviceSpecs: true },
    });
  });
});

describe('JSON', () => {
  test('a JSON document is parsed like YAML', () => {
    const text = JSON.stringify({
      version: 'v1',
      sharing: { split: { resources: [{ name: 'gpu', count: 4, memoryScaling: 0.5 }] } },
    });
    expect(parse(text).config?.sharing.split).toEqual({
      hookPath: '/usr/local/vgpu',
      resources: [
        {
          name: 'nvidia.com/gpu',
          rename: null,
          devices: { type: 'all' },
          count: 4,
          memoryScaling: 0.5,
          coreScaling: 1,
        },
      ],
    });
  });

  test('replicas are bounded so one GPU fits in a kubelet message, at the limit accepted', () => {
    const ts = (replicas: number) =>
      `sharing: {timeSlicing: {resources: [{name: gpu, replicas: ${replicas}}]}}`;
    expect(errorsOf(ts(100_000_000))).toEqual([
      "config.yaml: sharing.timeSlicing.resources[0].replicas: number of replicas must be <= 32768 (got 100000000): one GPU's replicas must fit in kubelet's 4 MiB device list",
    ]);
    expect(errorsOf(ts(32_769))).toHaveLength(1);
    expect(parse(ts(32_768)).config?.sharing.timeSlicing.resources[0]?.replicas).toBe(32_768);
  });

  test('JSON errors carry the same paths', () => {
    expect(errorsOf('{"sharing": {"timeSlicing": {"resources": [{"name": "gpu", "replicas": 1}]}}}')).toEqual(
      ['config.yaml: sharing.timeSlicing.resources[0].replicas: number of replicas must be >= 2 (got 1)'],
    );
  });
});

describe('syntax errors', () => {
  test.each([
    [
      'an unclosed flow sequence',
      'flags:\n  plugin:\n    deviceListStrategy: [envvar\n',
      ['config.yaml:4:1: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ],
    [
      'a tab used as indentation',
      'flags:\n\tmigStrategy: none\n',
      ['config.yaml:2:1: Tabs are not allowed as indentation'],
    ],
    ['a duplicated key', 'version: v1\nversion: v1\n', ['config.yaml:2:1: Map keys must be unique']],
    [
      'two documents',
      'version: v1\n---\nversion: v1\n',
      ['config.yaml:2:1: Source contains multiple documents; please use YAML.parseAllDocuments()'],
    ],
    [
      'an alias without anchor',
      'flags: *missing\n',
      ['config.yaml: Unresolved alias (the anchor must be set before the alias): missing'],
    ],
  ])('%s', (_what, text, errors) => {
    expect(errorsOf(text)).toEqual(errors);
  });

  test('issues also carry line and column', () => {
    const result = parseConfig('flags:\n  migStrategy: foo\n', 'config.yaml');
    expect(result.ok ? [] : result.error).toEqual([
      {
        source: 'config.yaml',
        path: 'flags.migStrategy',
        message: 'unknown MIG strategy: foo (expected none, single or mixed)',
        line: 2,
        column: 16,
      },
    ]);
  });
});

describe('unknown keys', () => {
  test.each([
    [
      'flags:\n  plugin:\n    deviceListStrategyy: envvar\n',
      'flags.plugin.deviceListStrategyy: unknown key (did you mean "deviceListStrategy"?)',
    ],
    ['flags:\n  migstrategy: none\n', 'flags.migstrategy: unknown key (did you mean "migStrategy"?)'],
    [
      'flags:\n  failOnInitEror: true\n',
      'flags.failOnInitEror: unknown key (did you mean "failOnInitError"?)',
    ],
    ['sharing:\n  timeslicing: {}\n', 'sharing.timeslicing: unknown key (did you mean "timeSlicing"?)'],
    [
      'sharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replica: 2\n',
      'sharing.timeSlicing.resources[0].replica: unknown key (did you mean "replicas"?)',
    ],
    // The right key in the wrong place.
    [
      'flags:\n  deviceListStrategy: envvar\n',
      'flags.deviceListStrategy: unknown key (did you mean "flags.plugin.deviceListStrategy"?)',
    ],
    [
      'sharing:\n  split:\n    count: 4\n',
      'sharing.split.count: unknown key (did you mean "sharing.split.resources[].count"?)',
    ],
    [
      'sharing:\n  nothingLikeIt: 1\n',
      'sharing.nothingLikeIt: unknown key (expected one of: timeSlicing, mps, split, hami)',
    ],
    [
      'deviceSplitCount: 10\n',
      'deviceSplitCount: unknown key (did you mean "sharing.hami.deviceSplitCount"?)',
    ],
  ])('%j', (text, error) => {
    expect(errorsOf(text)?.filter((e) => e.includes('unknown key'))).toEqual([`config.yaml: ${error}`]);
  });

  test('problems are listed in document order, one per unknown key', () => {
    expect(errorsOf('flags:\n  migStrategyy: none\n  migStrategy: foo\n  gdsEnabld: true\n')).toEqual([
      'config.yaml: flags.migStrategyy: unknown key (did you mean "migStrategy"?)',
      'config.yaml: flags.migStrategy: unknown MIG strategy: foo (expected none, single or mixed)',
      'config.yaml: flags.gdsEnabld: unknown key (did you mean "gdsEnabled"?)',
    ]);
  });
});

describe('sharing rules of vgpu-agent', () => {
  test('MPS is rejected', () => {
    expect(errorsOf('sharing:\n  mps:\n    resources:\n    - name: gpu\n      replicas: 2\n')).toEqual([
      'config.yaml: sharing.mps: not supported by vgpu-agent; use sharing.timeSlicing or sharing.split',
    ]);
  });

  test('a resource cannot be both time-sliced and split', () => {
    const text = [
      'sharing:',
      '  timeSlicing:',
      '    resources:',
      '    - name: gpu',
      '      replicas: 4',
      '  split:',
      '    resources:',
      '    - name: nvidia.com/gpu',
    ].join('\n');
    expect(errorsOf(text)).toEqual([
      'config.yaml: sharing.split.resources[0].name: nvidia.com/gpu is also listed at sharing.timeSlicing.resources[0].name; a resource is either time-sliced or split',
    ]);
  });

  test('two strategies cannot advertise the same name', () => {
    const text = JSON.stringify({
      sharing: {
        timeSlicing: { resources: [{ name: 'gpu', replicas: 2, rename: 'shared' }] },
        split: { resources: [{ name: 'mig-1g.5gb', rename: 'shared' }] },
      },
    });
    expect(errorsOf(text)).toEqual([
      'config.yaml: sharing.split.resources[0].rename: nvidia.com/shared is also advertised by sharing.timeSlicing.resources[0]; a resource is either time-sliced or split',
    ]);
  });

  test('a name equal to another strategy’s rename is reported at that name', () => {
    const text = JSON.stringify({
      sharing: {
        timeSlicing: { resources: [{ name: 'gpu', replicas: 2, rename: 'mig-1g.5gb' }] },
        split: { resources: [{ name: 'mig-1g.5gb' }] },
      },
    });
    expect(errorsOf(text)).toEqual([
      'config.yaml: sharing.split.resources[0].name: nvidia.com/mig-1g.5gb is also advertised by sharing.timeSlicing.resources[0]; a resource is either time-sliced or split',
    ]);
  });

  test('a resource listed twice must give each entry a devices list', () => {
    const twice = (devices0: unknown, devices1: unknown) =>
      JSON.stringify({
        sharing: {
          timeSlicing: {
            resources: [
              { name: 'gpu', replicas: 2, devices: devices0 },
              { name: 'gpu', replicas: 4, devices: devices1, rename: 'gpu-4x' },
            ],
          },
        },
      });
    expect(errorsOf(twice('all', [1]))).toEqual([
      'config.yaml: sharing.timeSlicing.resources[1].name: nvidia.com/gpu is listed more than once (also at sharing.timeSlicing.resources[0]); entries for one resource must each select their GPUs with a devices list',
    ]);
    expect(errorsOf(twice([0], 'all'))).toEqual([
      'config.yaml: sharing.timeSlicing.resources[1].name: nvidia.com/gpu is listed more than once (also at sharing.timeSlicing.resources[0]); entries for one resource must each select their GPUs with a devices list',
    ]);
    expect(parse(twice([0], [1])).config?.sharing.timeSlicing.resources.map((r) => r.replicas)).toEqual([
      2, 4,
    ]);
  });

  test.each([
    [{ count: 0 }, 'count: must be >= 1 (got 0)'],
    [{ count: 2.5 }, 'count: expected an integer (got 2.5)'],
    [
      { count: 100_000_000 },
      "count: must be <= 32768 (got 100000000): one GPU's slices must fit in kubelet's 4 MiB device list",
    ],
    [{ memoryScaling: 0 }, 'memoryScaling: must be > 0 (got 0)'],
    [{ coreScaling: -1 }, 'coreScaling: must be > 0 (got -1)'],
    // A scaling of 0 is reported once, by its own bound: the slice checks skip it (0 SMs is no "< 1%").
    [{ coreScaling: 0 }, 'coreScaling: must be > 0 (got 0)'],
    [{ count: 200, memoryScaling: 0 }, 'memoryScaling: must be > 0 (got 0)'],
    [
      { count: 2, memoryScaling: 3 },
      'memoryScaling: must be <= count (2): a slice cannot have more memory than its GPU (got 3)',
    ],
    [
      { count: 2, coreScaling: 2.5 },
      'coreScaling: must be <= count (2): a slice cannot have more than 100% of the SMs (got 2.5)',
    ],
    [
      { count: 200 },
      'coreScaling: each of the 200 slices would get less than 1% of the SMs (got coreScaling 1)',
    ],
  ])('split %j is rejected', (fields, error) => {
    const text = JSON.stringify({ sharing: { split: { resources: [{ name: 'gpu', ...fields }] } } });
    expect(errorsOf(text)).toEqual([`config.yaml: sharing.split.resources[0].${error}`]);
  });

  test.each([
    [
      { count: 1, memoryScaling: 2 },
      'memoryScaling: must be <= count (1): a slice cannot have more memory than its GPU (got 2)',
    ],
    [
      { count: 32768, memoryScaling: 40000, coreScaling: 400 },
      'memoryScaling: must be <= count (32768): a slice cannot have more memory than its GPU (got 40000)',
    ],
  ])('split %j, at a bound of count, still has its scaling checked', (fields, error) => {
    const text = JSON.stringify({ sharing: { split: { resources: [{ name: 'gpu', ...fields }] } } });
    expect(errorsOf(text)).toEqual([`config.yaml: sharing.split.resources[0].${error}`]);
  });

  test.each([[{ count: 4, memoryScaling: 4, coreScaling: 4 }], [{ count: 100, coreScaling: 1 }]])(
    'split %j is accepted: a whole GPU per slice, or exactly 1% of the SMs',
    (fields) => {
      const text = JSON.stringify({ sharing: { split: { resources: [{ name: 'gpu', ...fields }] } } });
      expect(errorsOf(text)).toBeUndefined();
    },
  );

  test('a rename to the resource’s own name is no rename', () => {
    const text = JSON.stringify({
      sharing: {
        timeSlicing: { resources: [{ name: 'gpu', rename: 'nvidia.com/gpu', replicas: 2 }] },
        split: { resources: [{ name: 'mig-1g.10gb', rename: 'nvidia.com/mig-1g.10gb', count: 2 }] },
      },
    });
    const config = parse(text).config!;
    expect(config.sharing.timeSlicing.resources[0]!.rename).toBeNull();
    expect(config.sharing.split.resources[0]!.rename).toBeNull();
  });

  test('split accepts oversubscription up to one GPU per slice', () => {
    const text = JSON.stringify({
      sharing: {
        split: {
          hookPath: '/opt/vgpu',
          resources: [{ name: 'gpu', count: 4, memoryScaling: 2, coreScaling: 4 }],
        },
      },
    });
    expect(parse(text).config?.sharing.split).toEqual({
      hookPath: '/opt/vgpu',
      resources: [
        {
          name: 'nvidia.com/gpu',
          rename: null,
          devices: { type: 'all' },
          count: 4,
          memoryScaling: 2,
          coreScaling: 4,
        },
      ],
    });
  });
});

describe('devices entries and resource names at the edges', () => {
  const withDevices = (devices: unknown) =>
    JSON.stringify({ sharing: { timeSlicing: { resources: [{ name: 'gpu', replicas: 2, devices }] } } });
  const REFS = 'a GPU index, "<gpu>:<mig>", GPU-<uuid>, MIG-<uuid> or MIG-GPU-<uuid>/<gi>/<ci>';
  const unsupported = (got: string) =>
    `config.yaml: sharing.timeSlicing.resources[0].devices[0]: unsupported type for device in devices list (got ${got}; expected ${REFS})`;

  test.each([
    // A nested list whose text is an index ("0") is still not an index.
    [[[0]], 'a list'],
    // MIG indices past 2^53 cannot be told apart, on either side of the colon.
    [['99999999999999999999:0'], '"99999999999999999999:0"'],
    [['0:99999999999999999999'], '"0:99999999999999999999"'],
  ])('devices: %j is rejected', (devices, got) => {
    expect(errorsOf(withDevices(devices))).toEqual([unsupported(got)]);
  });

  test('the bare prefix nvidia.com/ is not a resource name', () => {
    const text = JSON.stringify({
      sharing: { timeSlicing: { resources: [{ name: 'nvidia.com/', replicas: 2 }] } },
    });
    expect(errorsOf(text)).toEqual([
      "config.yaml: sharing.timeSlicing.resources[0].name: incorrect format for resource name 'nvidia.com/': a name is needed after nvidia.com/",
    ]);
  });
});

describe('configHash', () => {
  const hashOf = (text: string) => {
    const result = parseConfig(text, 'config.yaml');
    if (!result.ok) throw new Error(result.error.map(formatIssue).join('\n'));
    return configHash(result.value.config);
  };

  test('is 12 hex digits and ignores key order, spelling of defaults and keys without effect', () => {
    const base = hashOf('version: v1');
    expect(base).toMatch(/^[0-9a-f]{12}$/);
    expect(hashOf('{}')).toBe(base);
    expect(hashOf('flags:\n  migStrategy: none\n  gfd:\n    oneshot: true\n')).toBe(base);
    expect(hashOf('flags:\n  plugin:\n    deviceListStrategy: [envvar, envvar]\n')).toBe(base);
    expect(hashOf('flags: {gdsEnabled: true, failOnInitError: true}')).toBe(
      hashOf('flags: {failOnInitError: true, gdsEnabled: true}'),
    );
  });

  test('changes when a setting that matters changes', () => {
    expect(hashOf('flags:\n  migStrategy: mixed\n')).not.toBe(hashOf('version: v1'));
    expect(hashOf('health:\n  recoverAfterSeconds: 0\n')).not.toBe(hashOf('version: v1'));
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vgpu-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const errorsFor = async (file: string) => {
    const result = await loadConfigFile(file);
    return result.ok ? [] : result.error.map(formatIssue);
  };

  test('reads and parses a file, naming it in messages', async () => {
    const file = path.join(dir, 'config.yaml');
    await writeFile(file, 'version: v1\nflags:\n  migStrategy: single\n');
    const result = await loadConfigFile(file);
    expect(result.ok && result.value.config.flags.migStrategy).toBe('single');
    await writeFile(file, 'version: v3\n');
    expect(await errorsFor(file)).toEqual([`${file}: version: unknown version: v3`]);
  });

  test('a missing file', async () => {
    const file = path.join(dir, 'absent.yaml');
    expect(await errorsFor(file)).toEqual([`${file}: file not found`]);
  });

  test('a directory', async () => {
    expect(await errorsFor(dir)).toEqual([`${dir}: is a directory (expected a configuration file)`]);
  });

  // A FIFO's open blocks until a writer appears: it must be refused, not read (it would never return).
  test('a FIFO, directly or through a link, is refused without being opened for a blocking read', async () => {
    const fifo = path.join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const link = path.join(dir, 'fifo-link.yaml');
    await symlink('fifo.yaml', link);
    const why =
      'is a FIFO (named pipe), not a regular file (a config must be a regular file or a link to one)';
    expect(await errorsFor(fifo)).toEqual([`${fifo}: ${why}`]);
    expect(await errorsFor(link)).toEqual([`${link}: ${why}`]);
  });

  test('devices and sockets are refused, naming what they are', async () => {
    expect(await errorsFor('/dev/null')).toEqual([
      '/dev/null: is a character device, not a regular file (a config must be a regular file or a link to one)',
    ]);
    const socketPath = path.join(dir, 'config.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      expect(await errorsFor(socketPath)).toEqual([
        `${socketPath}: is a socket, not a regular file (a config must be a regular file or a link to one)`,
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a link to a regular file is read (ConfigMap keys are links)', async () => {
    await writeFile(path.join(dir, 'target.yaml'), 'flags:\n  migStrategy: mixed\n');
    const link = path.join(dir, 'key');
    await symlink('target.yaml', link);
    const result = await loadConfigFile(link);
    expect(result.ok && result.value.config.flags.migStrategy).toBe('mixed');
  });

  test('a file larger than a ConfigMap can hold is refused', async () => {
    const file = path.join(dir, 'huge.yaml');
    await writeFile(file, `# ${'x'.repeat(1024 * 1024)}\nversion: v1\n`);
    expect(await errorsFor(file)).toEqual([`${file}: file is too large (1048591 bytes; at most 1048576)`]);
  });

  test('an empty file', async () => {
    const file = path.join(dir, 'empty.yaml');
    await writeFile(file, '  \n');
    expect(await errorsFor(file)).toEqual([
      `${file}: file is empty (write "version: v1" for the default configuration)`,
    ]);
  });
});
