import { describe, expect, it } from 'vitest';
import { type ConfigLocation, configKeys, type SelectionInput, selectConfig } from './select.js';

const dir = (...keys: string[]): ConfigLocation => ({ kind: 'directory', path: '/cfg', keys });

describe('configKeys', () => {
  it("drops kubelet's dot entries and sorts", () => {
    expect(configKeys(['b', '..data', '..2026_11_21_10_00_00.123', '..data_tmp', '.hidden', 'a'])).toEqual([
      'a',
      'b',
    ]);
  });
});

describe('selectConfig', () => {
  const chosen: [string, ConfigLocation, SelectionInput, { name: string; file: string; reason: string }][] = [
    [
      '--config-name wins over the label',
      dir('a', 'b', 'default'),
      { configName: 'a', nodeLabel: 'b' },
      { name: 'a', file: '/cfg/a', reason: 'flag' },
    ],
    [
      'the node label',
      dir('a', 'b', 'default'),
      { nodeLabel: 'b' },
      { name: 'b', file: '/cfg/b', reason: 'label' },
    ],
    [
      'an empty label is unset',
      dir('a', 'default'),
      { nodeLabel: '' },
      { name: 'default', file: '/cfg/default', reason: 'default' },
    ],
    [
      'the key default',
      dir('a', 'default'),
      {},
      { name: 'default', file: '/cfg/default', reason: 'default' },
    ],
    ['the only key', dir('a100-ts'), {}, { name: 'a100-ts', file: '/cfg/a100-ts', reason: 'only' }],
    [
      'a name without the key extension',
      dir('a100-ts.yaml', 'b'),
      { nodeLabel: 'a100-ts' },
      { name: 'a100-ts.yaml', file: '/cfg/a100-ts.yaml', reason: 'label' },
    ],
    [
      'a name with an extension the key lacks',
      dir('a100-ts', 'b'),
      { configName: 'a100-ts.yml' },
      { name: 'a100-ts', file: '/cfg/a100-ts', reason: 'flag' },
    ],
    [
      'default.yaml is the default',
      dir('a', 'default.yaml'),
      {},
      { name: 'default.yaml', file: '/cfg/default.yaml', reason: 'default' },
    ],
    [
      'an exact key before an extension match',
      dir('a', 'a.json'),
      { configName: 'a.json' },
      { name: 'a.json', file: '/cfg/a.json', reason: 'flag' },
    ],
    [
      '--config-name with blanks around it',
      dir('a', 'b'),
      { configName: ' a ' },
      { name: 'a', file: '/cfg/a', reason: 'flag' },
    ],
    [
      'a blank label is unset',
      dir('a', 'default'),
      { nodeLabel: ' ' },
      { name: 'default', file: '/cfg/default', reason: 'default' },
    ],
    [
      'a plain file',
      { kind: 'file', path: '/etc/vgpu/config.yaml' },
      { nodeLabel: 'x' },
      { name: 'config.yaml', file: '/etc/vgpu/config.yaml', reason: 'file' },
    ],
    [
      'a plain file named by --config-name',
      { kind: 'file', path: '/etc/vgpu/config.yaml' },
      { configName: 'config' },
      { name: 'config.yaml', file: '/etc/vgpu/config.yaml', reason: 'file' },
    ],
  ];
  it.each(chosen)('%s', (_, location, input, expected) => {
    expect(selectConfig(location, input)).toEqual({ ok: true, value: expected });
  });

  const refused: [string, ConfigLocation, SelectionInput, string][] = [
    [
      'no keys',
      dir(),
      {},
      '/cfg: no configs in this directory (expected a mounted ConfigMap with at least one key)',
    ],
    [
      'a flag naming a missing key',
      dir('a', 'b'),
      { configName: 'c' },
      '/cfg: specified config c does not exist (available: a, b); named by --config-name',
    ],
    [
      'a label naming a missing key',
      dir('a', 'default'),
      { nodeLabel: 'c' },
      '/cfg: specified config c does not exist (available: a, default); named by node label nvidia.com/device-plugin.config',
    ],
    [
      'several keys and no choice',
      dir('a', 'b'),
      {},
      '/cfg: several configs (a, b) and none chosen: set --config-name or the node label nvidia.com/device-plugin.config, or add a key named default',
    ],
    [
      'an ambiguous name',
      dir('a.json', 'a.yaml'),
      { nodeLabel: 'a' },
      '/cfg: config a (named by node label nvidia.com/device-plugin.config) matches several keys: a.json, a.yaml',
    ],
    [
      'two keys that could be the default',
      dir('a', 'default.json', 'default.yaml'),
      {},
      '/cfg: several keys could be the default: default.json, default.yaml',
    ],
    [
      // A name that is only an extension keeps it: ".json" does not name the file ".yaml".
      '--config-name .json for a file named .yaml',
      { kind: 'file', path: '/etc/vgpu/.yaml' },
      { configName: '.json' },
      '/etc/vgpu/.yaml: --config-name .json chooses a key of a ConfigMap directory, but this path is a single file (give the directory, or drop --config-name)',
    ],
    [
      '--config-name with another file',
      { kind: 'file', path: '/etc/config.yaml' },
      { configName: 'big' },
      '/etc/config.yaml: --config-name big chooses a key of a ConfigMap directory, but this path is a single file (give the directory, or drop --config-name)',
    ],
  ];
  it.each(refused)('refuses %s', (_, location, input, error) => {
    expect(selectConfig(location, input)).toEqual({ ok: false, error });
  });
});
