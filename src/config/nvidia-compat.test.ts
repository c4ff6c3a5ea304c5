/**
 * NVIDIA k8s-device-plugin's own test inputs (api/config/v1/*_test.go, internal/plugin/server_test.go),
 * run through our loader: what NVIDIA rejects we reject with NVIDIA's words, what it accepts we accept.
 */
import { describe, expect, test } from 'vitest';
import { formatIssue } from './errors.js';
import { parseConfig } from './load.js';

const UUID = '4cf8db2d-06c0-7d70-1a51-e59b25b2c16c';

function parse(text: string) {
  const result = parseConfig(text, 'config.yaml');
  return result.ok
    ? { config: result.value.config, warnings: result.value.warnings }
    : { errors: result.error.map(formatIssue) };
}

/** A one-resource time-slicing config whose resource is the given JSON text. */
const withResource = (resource: string) => `{"sharing": {"timeSlicing": {"resources": [${resource}]}}}`;
const withDevices = (devices: string) =>
  withResource(`{"name": "gpu", "replicas": 2, "devices": ${devices}}`);
const devicesPath = 'config.yaml: sharing.timeSlicing.resources[0].devices';
const REFS = 'a GPU index, "<gpu>:<mig>", GPU-<uuid>, MIG-<uuid> or MIG-GPU-<uuid>/<gi>/<ci>';
const NAME_RULES =
  'the part after nvidia.com/ must be lower-case letters, digits, "-" and ".", starting and ending with a letter or digit';
const DURATION_FORMS = 'expected a duration such as "60s", a number of nanoseconds or "infinite"';

describe('devices (replicas_test.go TestUnmarshalReplicatedDevices)', () => {
  test.each([
    ['""', [`${devicesPath}: devices set as '' but the only valid string input is 'all'`]],
    ['"not-all"', [`${devicesPath}: devices set as 'not-all' but the only valid string input is 'all'`]],
    ['-2', [`${devicesPath}: devices set as '-2' but a count of devices must be > 0`]],
    ['0', [`${devicesPath}: devices set as '0' but a count of devices must be > 0`]],
    [
      '2.5',
      [
        `${devicesPath}: unrecognized type for devices spec: 2.5 (expected "all", a count > 0 or a list of devices)`,
      ],
    ],
    [
      'true',
      [
        `${devicesPath}: unrecognized type for devices spec: true (expected "all", a count > 0 or a list of devices)`,
      ],
    ],
    ['[-1]', [`${devicesPath}[0]: unsupported type for device in devices list (got -1; expected ${REFS})`]],
    [
      '["-1"]',
      [`${devicesPath}[0]: unsupported type for device in devices list (got "-1"; expected ${REFS})`],
    ],
    [
      '["invalid-UUID"]',
      [
        `${devicesPath}[0]: unsupported type for device in devices list (got "invalid-UUID"; expected ${REFS})`,
      ],
    ],
    [
      '["GPU-UUID"]',
      [`${devicesPath}[0]: unsupported type for device in devices list (got "GPU-UUID"; expected ${REFS})`],
    ],
    [
      '["MIG-UUID"]',
      [`${devicesPath}[0]: unsupported type for device in devices list (got "MIG-UUID"; expected ${REFS})`],
    ],
    [
      `["MIG-GPU-${UUID}"]`,
      [
        `${devicesPath}[0]: unsupported type for device in devices list (got "MIG-GPU-${UUID}"; expected ${REFS})`,
      ],
    ],
    [
      '[0, "x", 1.5]',
      [
        `${devicesPath}[1]: unsupported type for device in devices list (got "x"; expected ${REFS})`,
        `${devicesPath}[2]: unsupported type for device in devices list (got 1.5; expected ${REFS})`,
      ],
    ],
    ['[]', [`${devicesPath}: devices list is empty (expected "all", a count > 0 or a list of devices)`]],
  ])('devices: %s is rejected', (devices, errors) => {
    expect(parse(withDevices(devices))).toEqual({ errors });
  });

  test.each([
    ['"all"', { type: 'all' }],
    ['2', { type: 'count', count: 2 }],
    // A YAML/JSON number: 2.0 is 2. NVIDIA's file loader (sigs.k8s.io/yaml) also re-encodes it as 2.
    ['2.0', { type: 'count', count: 2 }],
    ['[0]', { type: 'list', devices: [{ type: 'index', index: 0 }] }],
    ['["0"]', { type: 'list', devices: [{ type: 'index', index: 0 }] }],
    ['["0:0"]', { type: 'list', devices: [{ type: 'mig-index', gpu: 0, mig: 0 }] }],
    [`["GPU-${UUID}"]`, { type: 'list', devices: [{ type: 'uuid', uuid: `GPU-${UUID}` }] }],
    [`["MIG-${UUID}"]`, { type: 'list', devices: [{ type: 'uuid', uuid: `MIG-${UUID}` }] }],
    [`["MIG-GPU-${UUID}/0/0"]`, { type: 'list', devices: [{ type: 'uuid', uuid: `MIG-GPU-${UUID}/0/0` }] }],
    [
      `[0, "0:0", "GPU-${UUID}"]`,
      {
        type: 'list',
        devices: [
          { type: 'index', index: 0 },
          { type: 'mig-index', gpu: 0, mig: 0 },
          { type: 'uuid', uuid: `GPU-${UUID}` },
        ],
      },
    ],
    [
      `["0", "0:0", "GPU-${UUID}", 0]`, // the repeated 0 is dropped
      {
        type: 'list',
        devices: [
          { type: 'index', index: 0 },
          { type: 'mig-index', gpu: 0, mig: 0 },
          { type: 'uuid', uuid: `GPU-${UUID}` },
        ],
      },
    ],
  ])('devices: %s is accepted', (devices, selection) => {
    const result = parse(withDevices(devices));
    expect(result.config?.sharing.timeSlicing.resources[0]?.devices).toEqual(selection);
  });

  test('an unquoted MIG index in YAML is the string "1:0", not a YAML 1.1 sexagesimal number', () => {
    const result = parse(
      'sharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 2\n      devices: [1:0]\n',
    );
    expect(result.config?.sharing.timeSlicing.resources[0]?.devices).toEqual({
      type: 'list',
      devices: [{ type: 'mig-index', gpu: 1, mig: 0 }],
    });
  });
});

describe('a resource (replicas_test.go TestUnmarshalReplicatedResource)', () => {
  const at = 'config.yaml: sharing.timeSlicing.resources[0]';
  test.each([
    ['{}', [`${at}.name: no resource name specified`, `${at}.replicas: no replicas specified`]],
    ['{"name": "valid"}', [`${at}.replicas: no replicas specified`]],
    ['{"name": "valid", "devices": "all"}', [`${at}.replicas: no replicas specified`]],
    [
      '{"name": "valid", "devices": "all", "rename": "valid-shared"}',
      [`${at}.replicas: no replicas specified`],
    ],
    ['{"name": "valid", "replicas": -1}', [`${at}.replicas: number of replicas must be >= 2 (got -1)`]],
    ['{"name": "valid", "replicas": 0}', [`${at}.replicas: number of replicas must be >= 2 (got 0)`]],
    ['{"name": "valid", "replicas": 1}', [`${at}.replicas: number of replicas must be >= 2 (got 1)`]],
    [
      '{"name": "valid", "replicas": 2.5}',
      [
        `${at}.replicas: json: cannot unmarshal number 2.5 into Go struct field Sharing.sharing.timeSlicing of type int (expected an integer, got 2.5)`,
      ],
    ],
    [
      '{"name": "valid", "replicas": "2"}',
      [
        `${at}.replicas: json: cannot unmarshal string into Go struct field Sharing.sharing.timeSlicing of type int (expected an integer, got "2")`,
      ],
    ],
    [
      '{"name": "$invalid$", "replicas": 2, "rename": "valid-shared"}',
      [`${at}.name: incorrect format for resource name 'nvidia.com/$invalid$': ${NAME_RULES}`],
    ],
    [
      '{"name": "valid", "replicas": 2, "rename": "$invalid$"}',
      [`${at}.rename: incorrect format for resource name 'nvidia.com/$invalid$': ${NAME_RULES}`],
    ],
  ])('%s is rejected', (resource, errors) => {
    expect(parse(withResource(resource))).toEqual({ errors });
  });

  test.each([
    [
      '{"name": "valid", "devices": "all", "replicas": 2}',
      { name: 'nvidia.com/valid', rename: null, devices: { type: 'all' }, replicas: 2 },
    ],
    [
      '{"name": "valid", "devices": "all", "replicas": 2, "rename": "valid-shared"}',
      { name: 'nvidia.com/valid', rename: 'nvidia.com/valid-shared', devices: { type: 'all' }, replicas: 2 },
    ],
    // An omitted `devices` means all devices.
    [
      '{"name": "valid", "replicas": 2}',
      { name: 'nvidia.com/valid', rename: null, devices: { type: 'all' }, replicas: 2 },
    ],
    [
      '{"name": "nvidia.com/valid", "replicas": 2, "rename": "valid-shared"}',
      { name: 'nvidia.com/valid', rename: 'nvidia.com/valid-shared', devices: { type: 'all' }, replicas: 2 },
    ],
  ])('%s is accepted', (resource, expected) => {
    expect(parse(withResource(resource)).config?.sharing.timeSlicing.resources).toEqual([expected]);
  });
});

describe('resource lists (replicas_test.go TestUnmarshalReplicatedResources)', () => {
  test.each([
    [
      '{"sharing": {"timeSlicing": {}}}',
      ['config.yaml: sharing.timeSlicing.resources: no resources specified'],
    ],
    [
      '{"sharing": {"timeSlicing": {"resources": []}}}',
      ['config.yaml: sharing.timeSlicing.resources: no resources specified'],
    ],
    [
      '{"sharing": {"timeSlicing": {"resources": [{"name": "$invalid$", "replicas": 2}]}}}',
      [
        `config.yaml: sharing.timeSlicing.resources[0].name: incorrect format for resource name 'nvidia.com/$invalid$': ${NAME_RULES}`,
      ],
    ],
  ])('%s is rejected', (text, errors) => {
    expect(parse(text)).toEqual({ errors });
  });

  test('two resources are kept in order', () => {
    const text = withResource('{"name": "valid1", "replicas": 2}, {"name": "valid2", "replicas": 3}');
    expect(parse(text).config?.sharing.timeSlicing.resources).toEqual([
      { name: 'nvidia.com/valid1', rename: null, devices: { type: 'all' }, replicas: 2 },
      { name: 'nvidia.com/valid2', rename: null, devices: { type: 'all' }, replicas: 3 },
    ]);
  });
});

describe('resource names (resources.go NewResourceName)', () => {
  const name = (n: string) => parse(withResource(`{"name": ${JSON.stringify(n)}, "replicas": 2}`));
  test('a name of exactly 63 characters is accepted, 64 is not', () => {
    const ok = `nvidia.com/${'a'.repeat(52)}`;
    expect(name(ok).config?.sharing.timeSlicing.resources[0]?.name).toBe(ok);
    expect(name('a'.repeat(53))).toEqual({
      errors: [
        `config.yaml: sharing.timeSlicing.resources[0].name: fully-qualified resource name must be 63 characters or less: nvidia.com/${'a'.repeat(53)} (64 characters)`,
      ],
    });
  });
  test('names outside nvidia.com/ are prefixed like NVIDIA does, and so rejected', () => {
    expect(name('example.com/gpu')).toEqual({
      errors: [
        "config.yaml: sharing.timeSlicing.resources[0].name: incorrect format for resource name 'nvidia.com/example.com/gpu': only names in the nvidia.com/ domain are supported",
      ],
    });
  });
  test('MIG profile names are valid resource names', () => {
    expect(name('mig-1g.10gb.me').config?.sharing.timeSlicing.resources[0]?.name).toBe(
      'nvidia.com/mig-1g.10gb.me',
    );
  });
  test('renameByDefault advertises <name>.shared; an explicit rename wins', () => {
    const text =
      '{"sharing": {"timeSlicing": {"renameByDefault": true, "resources": [' +
      '{"name": "gpu", "replicas": 2}, {"name": "mig-1g.5gb", "replicas": 2, "rename": "mig-ts"}]}}}';
    expect(parse(text).config?.sharing.timeSlicing.resources.map((r) => r.rename)).toEqual([
      'nvidia.com/gpu.shared',
      'nvidia.com/mig-ts',
    ]);
  });
  test('renameByDefault on a name with exactly room for ".shared" advertises 63 characters', () => {
    const fits = 'a'.repeat(45);
    const text = `{"sharing": {"timeSlicing": {"renameByDefault": true, "resources": [{"name": "${fits}", "replicas": 2}]}}}`;
    expect(parse(text).config?.sharing.timeSlicing.resources[0]?.rename).toBe(`nvidia.com/${fits}.shared`);
  });
  test('renameByDefault on a name with no room for ".shared" is an error', () => {
    const long = 'a'.repeat(46);
    expect(
      parse(
        `{"sharing": {"timeSlicing": {"renameByDefault": true, "resources": [{"name": "${long}", "replicas": 2}]}}}`,
      ),
    ).toEqual({
      errors: [
        `config.yaml: sharing.timeSlicing.resources[0].name: with renameByDefault this resource would be advertised as "nvidia.com/${long}.shared", longer than 63 characters`,
      ],
    });
  });
});

describe('flags (flags_test.go)', () => {
  test.each([['0'], ['"0s"'], ['5'], ['"5s"'], ['"1h30m"'], ['"infinite"']])(
    'gfd.sleepInterval %s is accepted (and warned about: GFD only)',
    (interval) => {
      expect(parse(`{"flags": {"gfd": {"sleepInterval": ${interval}}}}`).warnings).toEqual([
        'config.yaml: flags.gfd: used by gpu-feature-discovery only; no effect in vgpu-agent',
      ]);
    },
  );

  // duration.go: numbers are nanoseconds, strings go to Go's time.ParseDuration, anything else is "invalid duration".
  test.each([
    ['"5 parsecs"', `time: unknown unit " parsecs" in duration "5 parsecs" (${DURATION_FORMS})`],
    ['"5"', `time: missing unit in duration "5" (${DURATION_FORMS})`],
    ['"abc"', `time: invalid duration "abc" (${DURATION_FORMS})`],
    ['""', `time: invalid duration "" (${DURATION_FORMS})`],
    ['".s"', `time: invalid duration ".s" (${DURATION_FORMS})`],
    ['"9999999999h"', `time: invalid duration "9999999999h" (${DURATION_FORMS})`],
    ['"5µx"', `time: unknown unit "\\xc2\\xb5x" in duration "5\\xc2\\xb5x" (${DURATION_FORMS})`],
    ['true', `invalid duration (${DURATION_FORMS}, got true)`],
    ['[1]', `invalid duration (${DURATION_FORMS}, got a list)`],
  ])('gfd.sleepInterval %s is an error even though GFD keys have no effect', (interval, error) => {
    expect(parse(`{"flags": {"gfd": {"sleepInterval": ${interval}}}}`)).toEqual({
      errors: [`config.yaml: flags.gfd.sleepInterval: ${error}`],
    });
  });

  test.each([
    ['"-1.5h"'],
    ['"+.5s"'],
    ['"1.s"'],
    ['"5µs"'],
    ['"5μs"'],
    ['"2h45m30.5s"'],
    ['"-0"'],
    ['1.5e9'],
  ])('gfd.sleepInterval %s is a valid duration', (interval) => {
    expect(parse(`{"flags": {"gfd": {"sleepInterval": ${interval}}}}`).errors).toBeUndefined();
  });

  test('flags NVIDIA marshals as null when unset load as unset', () => {
    const text = [
      'version: v1',
      'flags:',
      '  migStrategy: null',
      '  failOnInitError: null',
      '  gdrcopyEnabled: null',
      '  gdsEnabled: null',
      '  mofedEnabled: null',
      '  useNodeFeatureAPI: null',
      '  deviceDiscoveryStrategy: null',
      '  plugin:',
      '    passDeviceSpecs: null',
      '    deviceListStrategy: null',
      '    deviceIDStrategy: null',
    ].join('\n');
    const result = parse(text);
    expect(result.warnings).toEqual([]);
    expect(result.config?.flags).toMatchObject({
      migStrategy: 'none',
      failOnInitError: true,
      gdrcopyEnabled: false,
      deviceDiscoveryStrategy: 'auto',
      plugin: { passDeviceSpecs: false, deviceListStrategy: ['envvar'], deviceIDStrategy: 'uuid' },
    });
  });

  test.each([
    ['envvar', ['envvar']],
    ['[envvar]', ['envvar']],
    // internal/plugin/server_test.go: foo,bar,foo → foo,bar (with real strategy names)
    ['[cdi-cri, envvar, cdi-cri]', ['cdi-cri', 'envvar']],
    [
      '[volume-mounts, cdi-annotations, volume-mounts, cdi-annotations]',
      ['volume-mounts', 'cdi-annotations'],
    ],
  ])('deviceListStrategy %s → %j', (value, expected) => {
    expect(
      parse(`flags:\n  plugin:\n    deviceListStrategy: ${value}\n`).config?.flags.plugin.deviceListStrategy,
    ).toEqual(expected);
  });

  test.each([
    [
      'foo',
      [
        'config.yaml: flags.plugin.deviceListStrategy: invalid strategy: foo (expected envvar, volume-mounts, cdi-annotations or cdi-cri)',
      ],
    ],
    [
      '[foo, envvar, foo]',
      [
        'config.yaml: flags.plugin.deviceListStrategy[0]: invalid strategy: foo (expected envvar, volume-mounts, cdi-annotations or cdi-cri)',
        'config.yaml: flags.plugin.deviceListStrategy[2]: invalid strategy: foo (expected envvar, volume-mounts, cdi-annotations or cdi-cri)',
      ],
    ],
    ['[]', ['config.yaml: flags.plugin.deviceListStrategy: must list at least one strategy']],
    [
      '{a: 1}',
      [
        'config.yaml: flags.plugin.deviceListStrategy: invalid deviceListStrategy: {"a":1} (expected a strategy or a list of strategies)',
      ],
    ],
    [
      '5',
      [
        'config.yaml: flags.plugin.deviceListStrategy: invalid deviceListStrategy: 5 (expected a strategy or a list of strategies)',
      ],
    ],
  ])('deviceListStrategy %s is rejected', (value, errors) => {
    expect(parse(`flags:\n  plugin:\n    deviceListStrategy: ${value}\n`)).toEqual({ errors });
  });

  // cmd/nvidia-device-plugin/main.go validateFlags, then what vgpu-agent expects.
  test.each([
    ['migStrategy: foo', 'flags.migStrategy: unknown MIG strategy: foo (expected none, single or mixed)'],
    // sigs.k8s.io/yaml gives a string field a YAML number as its text.
    ['migStrategy: 5', 'flags.migStrategy: unknown MIG strategy: 5 (expected none, single or mixed)'],
    [
      'deviceDiscoveryStrategy: tegra',
      'flags.deviceDiscoveryStrategy: tegra is not supported by vgpu-agent (expected auto or nvml)',
    ],
    [
      'deviceDiscoveryStrategy: wsl',
      'flags.deviceDiscoveryStrategy: invalid --device-discovery-strategy option wsl (expected auto or nvml)',
    ],
    [
      'plugin: {deviceIDStrategy: serial}',
      'flags.plugin.deviceIDStrategy: invalid --device-id-strategy option: serial (expected uuid or index)',
    ],
    [
      'plugin: {sharedDevicesAllocationPolicy: spread}',
      'flags.plugin.sharedDevicesAllocationPolicy: invalid --shared-devices-allocation-policy option: spread (expected distributed or packed)',
    ],
    [
      'failOnInitError: maybe',
      'flags.failOnInitError: json: cannot unmarshal string into Go struct field Flags.flags.failOnInitError of type bool (expected true or false, got "maybe")',
    ],
    [
      'nvidiaDriverRoot: run/nvidia/driver',
      'flags.nvidiaDriverRoot: must be an absolute path (got "run/nvidia/driver")',
    ],
    [
      'plugin: {cdiKind: gpu}',
      'flags.plugin.cdiKind: expected a CDI kind "<vendor>/<class>", such as nvidia.com/gpu (got "gpu")',
    ],
  ])('flags.%s is rejected', (line, error) => {
    expect(parse(`flags:\n  ${line}\n`)).toEqual({ errors: [`config.yaml: ${error}`] });
  });
});

describe('version (config.go parseConfigFrom)', () => {
  test.each([['version: v1'], ['version: ""'], ['flags: {}']])('%s is v1', (text) => {
    expect(parse(text).config?.version).toBe('v1');
  });
  test('any other version is rejected', () => {
    expect(parse('version: v2')).toEqual({ errors: ['config.yaml: version: unknown version: v2'] });
  });
});

describe('imex (imex_test.go)', () => {
  test('[] is accepted with a warning', () => {
    expect(parse('imex:\n  channelIDs: []\n').warnings).toEqual([
      'config.yaml: imex: no effect: IMEX channels are not supported by vgpu-agent',
    ]);
  });
  test('[2] is invalid, as in NVIDIA', () => {
    expect(parse('imex:\n  channelIDs: [2]\n')).toEqual({
      errors: ['config.yaml: imex.channelIDs: channelIDs must be [] or [0] (got [2])'],
    });
  });
  test('[0] is valid for NVIDIA but asks for a channel vgpu-agent cannot inject', () => {
    expect(parse('imex:\n  channelIDs: [0]\n')).toEqual({
      errors: [
        'config.yaml: imex.channelIDs: IMEX channels are not supported by vgpu-agent (expected channelIDs: [] and required: false)',
      ],
    });
  });
});

// NVIDIA's time-slicing decoder (replicas.go) reads these keys itself: a key written with no value
// decodes as the empty value, which it then rejects. Its exact words come first.
describe('keys written with no value (null)', () => {
  const entry = (fields: string) =>
    `sharing:\n  timeSlicing:\n    resources:\n      - name: gpu\n        replicas: 2\n${fields}`;
  const at = 'config.yaml: sharing.timeSlicing.resources[0]';
  test.each([
    [
      'timeSlicing:',
      'sharing:\n  timeSlicing:\n',
      [
        'config.yaml: sharing.timeSlicing: no resources specified: the key has no value (list resources under it, or remove the key)',
      ],
    ],
    [
      'devices:',
      entry('        devices:\n'),
      [
        `${at}.devices: devices set as '' but the only valid string input is 'all': the key has no value (write "all", a count or a list, or remove the key)`,
      ],
    ],
    [
      'rename:',
      entry('        rename:\n'),
      [
        `${at}.rename: incorrect format for resource name 'nvidia.com/': the key has no value (write a name, or remove the key)`,
      ],
    ],
    [
      'name: null',
      '{"sharing": {"timeSlicing": {"resources": [{"name": null, "replicas": 2}]}}}',
      [
        `${at}.name: incorrect format for resource name 'nvidia.com/': the key has no value (write a resource name such as gpu)`,
      ],
    ],
    [
      'replicas: ~',
      'sharing:\n  timeSlicing:\n    resources:\n      - name: gpu\n        replicas: ~\n',
      [`${at}.replicas: number of replicas must be >= 2: the key has no value`],
    ],
    [
      'several, with other problems, in document order',
      'sharing:\n  timeSlicing:\n    resources:\n      - name:\n        replicas: 1\n        devices:\n',
      [
        `${at}.name: incorrect format for resource name 'nvidia.com/': the key has no value (write a resource name such as gpu)`,
        `${at}.replicas: number of replicas must be >= 2 (got 1)`,
        `${at}.devices: devices set as '' but the only valid string input is 'all': the key has no value (write "all", a count or a list, or remove the key)`,
      ],
    ],
  ])('%s is rejected', (_, text, errors) => {
    expect(parse(text)).toEqual({ errors });
  });

  test('elsewhere a key with no value is not set, as for NVIDIA (encoding/json leaves it alone)', () => {
    const text = [
      'sharing:',
      '  timeSlicing:',
      '    renameByDefault:',
      '    failRequestsGreaterThanOne: null',
      '    resources:',
      '      - name: gpu',
      '        replicas: 2',
      '  mps:',
      'imex:',
      '  channelIDs:',
      'flags:',
      '  plugin:',
      '  gfd:',
      '    sleepInterval:',
    ].join('\n');
    const result = parse(text);
    expect(result.errors).toBeUndefined();
    expect(result.config?.sharing.timeSlicing).toEqual({
      renameByDefault: false,
      failRequestsGreaterThanOne: false,
      resources: [{ name: 'nvidia.com/gpu', rename: null, devices: { type: 'all' }, replicas: 2 }],
    });
  });
});

// Go's encoding/json (through sigs.k8s.io/yaml): `json: cannot unmarshal <JSON kind> into Go struct field
// <struct>.<path> of type <Go type>`; below NVIDIA's own time-slicing decoder the path stops at the key
// that called it. Then what vgpu-agent expects.
describe('values of the wrong type (encoding/json errors)', () => {
  const go = (kind: string, field: string, type: string) =>
    `json: cannot unmarshal ${kind} into Go struct field ${field} of type ${type}`;
  const timeSliced = (resource: string) => `sharing: {timeSlicing: {resources: [${resource}]}}`;
  test.each([
    [
      'flags: {failOnInitError: "true"}',
      `flags.failOnInitError: ${go('string', 'Flags.flags.failOnInitError', 'bool')} (expected true or false, got "true")`,
    ],
    [
      'flags: {gdsEnabled: 1}',
      `flags.gdsEnabled: ${go('number', 'Flags.flags.gdsEnabled', 'bool')} (expected true or false, got 1)`,
    ],
    [
      'flags: {plugin: {passDeviceSpecs: [true]}}',
      `flags.plugin.passDeviceSpecs: ${go('array', 'PluginCommandLineFlags.flags.plugin.passDeviceSpecs', 'bool')} (expected true or false, got a list)`,
    ],
    [
      'flags: {gfd: {oneshot: yesterday}}',
      `flags.gfd.oneshot: ${go('string', 'GFDCommandLineFlags.flags.gfd.oneshot', 'bool')} (expected true or false, got "yesterday")`,
    ],
    [
      'flags: {nvidiaDriverRoot: {path: /run}}',
      `flags.nvidiaDriverRoot: ${go('object', 'Flags.flags.nvidiaDriverRoot', 'string')} (expected a string, got a mapping)`,
    ],
    [
      'flags: {migStrategy: [mixed]}',
      `flags.migStrategy: ${go('array', 'Flags.flags.migStrategy', 'string')} (expected none, single or mixed, got a list)`,
    ],
    [
      'flags: {plugin: {deviceIDStrategy: {a: 1}}}',
      `flags.plugin.deviceIDStrategy: ${go('object', 'PluginCommandLineFlags.flags.plugin.deviceIDStrategy', 'string')} (expected uuid or index, got a mapping)`,
    ],
    ['flags: 5', `flags: ${go('number', 'Config.flags', 'v1.Flags')} (expected a mapping, got 5)`],
    [
      'flags: {plugin: on}',
      `flags.plugin: ${go('bool', 'Flags.flags.plugin', 'v1.PluginCommandLineFlags')} (expected a mapping, got true)`,
    ],
    [
      'sharing: [a]',
      `sharing: ${go('array', 'Config.sharing', 'v1.Sharing')} (expected a mapping, got a list)`,
    ],
    [
      'imex: {channelIDs: [zero]}',
      `imex.channelIDs[0]: ${go('string', 'Imex.imex.channelIDs', 'int')} (expected an integer, got "zero")`,
    ],
    [
      'sharing: {timeSlicing: gpu}',
      `sharing.timeSlicing: ${go('string', 'Sharing.sharing.timeSlicing', 'map[string]json.RawMessage')} (expected a mapping, got "gpu")`,
    ],
    [
      'sharing: {timeSlicing: {resources: {name: gpu, replicas: 2}}}',
      `sharing.timeSlicing.resources: ${go('object', 'Sharing.sharing.timeSlicing', '[]v1.ReplicatedResource')} (expected a list, got a mapping)`,
    ],
    [
      timeSliced('gpu'),
      `sharing.timeSlicing.resources[0]: ${go('string', 'Sharing.sharing.timeSlicing', 'map[string]json.RawMessage')} (expected a mapping, got "gpu")`,
    ],
    // No YAML-to-text conversion below NVIDIA's own decoder: a number is not a name there.
    [
      timeSliced('{name: 5, replicas: 2}'),
      `sharing.timeSlicing.resources[0].name: ${go('number', 'Sharing.sharing.timeSlicing', 'string')} (expected a string, got 5)`,
    ],
  ])('%s', (text, error) => {
    expect(parse(text).errors).toEqual([`config.yaml: ${error}`]);
  });

  test('keys NVIDIA does not have keep only our words', () => {
    expect(parse('health: {enabled: maybe}').errors).toEqual([
      'config.yaml: health.enabled: expected true or false (got "maybe")',
    ]);
  });
});
