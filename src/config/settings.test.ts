import { describe, expect, test } from 'vitest';
import { parseConfig } from './load.js';
import type { EffectiveConfig } from './schema.js';
import { applyOverrides, collectOverrides, OVERRIDABLE_SETTINGS, type SettingOverrides } from './settings.js';

function fileConfig(text = 'version: v1'): EffectiveConfig {
  const result = parseConfig(text, 'config.yaml');
  if (!result.ok) throw new Error('test config is invalid');
  return result.value.config;
}

describe('the settings table', () => {
  test('names each flag, variable and file key once, with help text from the schema', () => {
    const flags = OVERRIDABLE_SETTINGS.flatMap((s) => [s.flag, ...s.aliases]);
    const envs = OVERRIDABLE_SETTINGS.flatMap((s) => s.env);
    expect(new Set(flags).size).toBe(flags.length);
    expect(new Set(envs).size).toBe(envs.length);
    for (const s of OVERRIDABLE_SETTINGS) expect(s.description, s.flag).not.toBe('');
  });

  test('the flags of the brief and their variables', () => {
    const pairs = Object.fromEntries(OVERRIDABLE_SETTINGS.map((s) => [s.flag, s.env[0]]));
    expect(pairs).toMatchObject({
      '--mig-strategy': 'MIG_STRATEGY',
      '--fail-on-init-error': 'FAIL_ON_INIT_ERROR',
      '--pass-device-specs': 'PASS_DEVICE_SPECS',
      '--device-list-strategy': 'DEVICE_LIST_STRATEGY',
      '--device-id-strategy': 'DEVICE_ID_STRATEGY',
      '--nvidia-driver-root': 'NVIDIA_DRIVER_ROOT',
      '--dev-root': 'NVIDIA_DEV_ROOT',
      '--shared-devices-allocation-policy': 'SHARED_DEVICES_ALLOCATION_POLICY',
      '--cdi-annotation-prefix': 'CDI_ANNOTATION_PREFIX',
    });
  });

  test('kinds, defaults and choices come from the schema', () => {
    const byKey = Object.fromEntries(OVERRIDABLE_SETTINGS.map((s) => [s.key, s]));
    expect(byKey.migStrategy).toMatchObject({
      kind: 'string',
      defaultText: 'none',
      choices: ['none', 'single', 'mixed'],
    });
    expect(byKey.failOnInitError).toMatchObject({ kind: 'boolean', defaultText: 'true' });
    expect(byKey.deviceListStrategy).toMatchObject({
      kind: 'list',
      defaultText: 'envvar',
      choices: ['envvar', 'volume-mounts', 'cdi-annotations', 'cdi-cri'],
    });
    expect(byKey.nvidiaDevRoot).toMatchObject({ kind: 'string', defaultText: 'same as `nvidiaDriverRoot`' });
  });
});

describe('collectOverrides: flag > environment', () => {
  test('a flag wins over its variable; a blank variable counts as unset', () => {
    const { overrides, origins } = collectOverrides(
      { migStrategy: 'mixed' },
      {
        MIG_STRATEGY: 'single',
        DEVICE_ID_STRATEGY: 'index',
        CDI_ANNOTATION_PREFIX: ' ',
        PASS_DEVICE_SPECS: '',
      },
    );
    expect(overrides).toEqual({
      migStrategy: 'mixed',
      deviceIDStrategy: 'index',
    });
    expect(origins).toEqual({
      migStrategy: '--mig-strategy',
      deviceIDStrategy: 'DEVICE_ID_STRATEGY',
    });
  });
});

describe('applyOverrides: over the file', () => {
  const file = fileConfig('flags:\n  migStrategy: single\n  plugin:\n    deviceListStrategy: cdi-cri\n');

  test('replaces only what is given, without touching the input', () => {
    const before = structuredClone(file);
    const result = applyOverrides(file, { migStrategy: 'mixed', passDeviceSpecs: 'true' });
    expect(result.ok && result.value.flags).toEqual({
      ...file.flags,
      migStrategy: 'mixed',
      plugin: { ...file.flags.plugin, passDeviceSpecs: true },
    });
    expect(file).toEqual(before);
  });

  test.each<[SettingOverrides, Partial<EffectiveConfig['flags']['plugin']>]>([
    [{ deviceListStrategy: 'envvar,cdi-cri,envvar' }, { deviceListStrategy: ['envvar', 'cdi-cri'] }],
    [
      { deviceListStrategy: ['volume-mounts', 'envvar, cdi-annotations'] },
      { deviceListStrategy: ['volume-mounts', 'envvar', 'cdi-annotations'] },
    ],
    [{ passDeviceSpecs: true }, { passDeviceSpecs: true }],
    [{ passDeviceSpecs: 'F' }, { passDeviceSpecs: false }],
    [{ passDeviceSpecs: '1' }, { passDeviceSpecs: true }],
    [{ sharedDevicesAllocationPolicy: 'packed' }, { sharedDevicesAllocationPolicy: 'packed' }],
    [{ cdiAnnotationPrefix: 'example.com/' }, { cdiAnnotationPrefix: 'example.com/' }],
  ])('%j', (overrides, plugin) => {
    const result = applyOverrides(file, overrides);
    expect(result.ok && result.value.flags.plugin).toEqual({ ...file.flags.plugin, ...plugin });
  });

  test.each<[SettingOverrides, Record<string, string>, string[]]>([
    // NVIDIA's words first (validateFlags), then where the value came from and what was expected.
    [
      { migStrategy: 'foo' },
      {},
      ['unknown MIG strategy: foo (set by --mig-strategy; expected none, single or mixed)'],
    ],
    [
      { migStrategy: 'foo' },
      { migStrategy: 'MIG_STRATEGY' },
      ['unknown MIG strategy: foo (set by MIG_STRATEGY; expected none, single or mixed)'],
    ],
    [{ failOnInitError: 'yes' }, {}, ['invalid --fail-on-init-error: yes (expected true or false)']],
    [
      { deviceListStrategy: 'envvar,foo' },
      {},
      [
        'invalid --device-list-strategy: envvar,foo (expected envvar, volume-mounts, cdi-annotations or cdi-cri)',
      ],
    ],
    [
      { deviceListStrategy: '' },
      {},
      ['invalid --device-list-strategy: "" (expected envvar, volume-mounts, cdi-annotations or cdi-cri)'],
    ],
    [
      { deviceIDStrategy: 'serial' },
      {},
      ['invalid --device-id-strategy option: serial (expected uuid or index)'],
    ],
    [
      { deviceIDStrategy: 'serial' },
      { deviceIDStrategy: 'DEVICE_ID_STRATEGY' },
      ['invalid --device-id-strategy option: serial (set by DEVICE_ID_STRATEGY; expected uuid or index)'],
    ],
    [
      { deviceDiscoveryStrategy: 'wsl' },
      {},
      ['invalid --device-discovery-strategy option wsl (expected auto or nvml)'],
    ],
    [
      { nvidiaDriverRoot: 'run/nvidia' },
      {},
      ['invalid --nvidia-driver-root: run/nvidia (must be an absolute path)'],
    ],
    [
      { deviceDiscoveryStrategy: 'tegra' },
      {},
      ['invalid --device-discovery-strategy: tegra (expected auto or nvml)'],
    ],
    [
      { migStrategy: 'x', sharedDevicesAllocationPolicy: 'y' },
      {},
      [
        'unknown MIG strategy: x (set by --mig-strategy; expected none, single or mixed)',
        'invalid --shared-devices-allocation-policy option: y (expected distributed or packed)',
      ],
    ],
  ])('%j is rejected', (overrides, origins, errors) => {
    expect(applyOverrides(file, overrides, origins)).toEqual({ ok: false, error: errors });
  });

  test('the dev root follows an overridden driver root when the file did not set it', () => {
    const result = applyOverrides(fileConfig(), { nvidiaDriverRoot: '/run/nvidia/driver' });
    expect(result.ok && result.value.flags).toMatchObject({
      nvidiaDriverRoot: '/run/nvidia/driver',
      nvidiaDevRoot: '/run/nvidia/driver',
    });
  });

  test('a dev root set in the file stays when only the driver root is overridden', () => {
    const result = applyOverrides(fileConfig('flags:\n  nvidiaDevRoot: /host\n'), {
      nvidiaDriverRoot: '/run/nvidia/driver',
    });
    expect(result.ok && result.value.flags.nvidiaDevRoot).toBe('/host');
  });

  test('an explicit dev root wins; an empty one means the driver root', () => {
    const both = applyOverrides(fileConfig(), { nvidiaDriverRoot: '/run/nvidia/driver', nvidiaDevRoot: '/' });
    expect(both.ok && both.value.flags.nvidiaDevRoot).toBe('/');
    const empty = applyOverrides(fileConfig('flags:\n  nvidiaDevRoot: /host\n'), { nvidiaDevRoot: '' });
    expect(empty.ok && empty.value.flags.nvidiaDevRoot).toBe('/');
  });
});
