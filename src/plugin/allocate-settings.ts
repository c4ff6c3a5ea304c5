/** AllocateSettings from the effective config and what exists on the host (checked once, not per call). */
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { EffectiveConfig } from '../config/schema.js';
import type { AllocateSettings } from './allocate-response.js';

/** Driver control nodes a container needs besides its GPUs, each passed only when present. */
const CONTROL_DEVICE_NODES = [
  '/dev/nvidiactl',
  '/dev/nvidia-uvm',
  '/dev/nvidia-uvm-tools',
  '/dev/nvidia-modeset',
];

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

export async function allocateSettingsFrom(config: EffectiveConfig): Promise<AllocateSettings> {
  const { flags } = config;
  const devRoot = flags.nvidiaDevRoot;
  const present = await Promise.all(CONTROL_DEVICE_NODES.map((node) => exists(path.join(devRoot, node))));
  const extraEnvs: Record<string, string> = {};
  if (flags.gdrcopyEnabled) extraEnvs.NVIDIA_GDRCOPY = 'enabled';
  if (flags.gdsEnabled) extraEnvs.NVIDIA_GDS = 'enabled';
  if (flags.mofedEnabled) extraEnvs.NVIDIA_MOFED = 'enabled';
  return {
    deviceListStrategies: flags.plugin.deviceListStrategy,
    deviceIdStrategy: flags.plugin.deviceIDStrategy,
    passDeviceSpecs: flags.plugin.passDeviceSpecs,
    devRoot,
    controlDeviceNodes: CONTROL_DEVICE_NODES.filter((_, i) => present[i]),
    cdiAnnotationPrefix: flags.plugin.cdiAnnotationPrefix,
    cdiKind: flags.plugin.cdiKind,
    extraEnvs,
  };
}
