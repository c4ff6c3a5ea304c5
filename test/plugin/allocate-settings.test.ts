/**
 * allocateSettingsFrom: the config's Allocate flags, NVIDIA's extra NVIDIA_* environment switches and
 * the driver control nodes that exist under the dev root (looked up once, on a temp tree here).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { allocateSettingsFrom } from '../../src/plugin/allocate-settings.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

function config(text: string) {
  const parsed = parseConfig(text, 'test.yaml');
  if (!parsed.ok) throw new Error(parsed.error.map((e) => e.message).join('\n'));
  return parsed.value.config;
}

describe('allocateSettingsFrom', () => {
  it('turns gdrcopyEnabled, gdsEnabled and mofedEnabled into their NVIDIA_* variables, each on its own', async () => {
    const devRoot = '/no/such/root';
    const flags = (on: string) => config(`flags: {nvidiaDevRoot: ${devRoot}, ${on}}`);
    expect((await allocateSettingsFrom(flags('gdrcopyEnabled: true'))).extraEnvs).toEqual({
      NVIDIA_GDRCOPY: 'enabled',
    });
    expect((await allocateSettingsFrom(flags('gdsEnabled: true'))).extraEnvs).toEqual({
      NVIDIA_GDS: 'enabled',
    });
    expect((await allocateSettingsFrom(flags('mofedEnabled: true'))).extraEnvs).toEqual({
      NVIDIA_MOFED: 'enabled',
    });
    expect((await allocateSettingsFrom(config('version: v1'))).extraEnvs).toEqual({});
  });

  it('passes the control nodes that exist under nvidiaDevRoot, in a fixed order, and the plugin flags', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'vgpu-devroot-'));
    dirs.push(root);
    await mkdir(path.join(root, 'dev'));
    for (const node of ['nvidia-modeset', 'nvidiactl']) await writeFile(path.join(root, 'dev', node), '');
    const settings = await allocateSettingsFrom(
      config(`flags:
  nvidiaDevRoot: ${root}
  plugin: {deviceListStrategy: [envvar, cdi-cri], deviceIDStrategy: index, passDeviceSpecs: true, cdiAnnotationPrefix: a.b/}
`),
    );
    expect(settings).toEqual({
      deviceListStrategies: ['envvar', 'cdi-cri'],
      deviceIdStrategy: 'index',
      passDeviceSpecs: true,
      devRoot: root,
      controlDeviceNodes: ['/dev/nvidiactl', '/dev/nvidia-modeset'],
      cdiAnnotationPrefix: 'a.b/',
      cdiKind: 'nvidia.com/gpu',
      extraEnvs: {},
    });
  });
});
