/**
 * What a container gets for the devices kubelet allocated it: environment, mounts, device nodes and
 * CDI names, per NVIDIA's deviceListStrategy / deviceIDStrategy / passDeviceSpecs semantics. Pure:
 * which host files exist is decided once by the caller and passed in.
 */
import path from 'node:path';
import type { AdvertisedDevice, DeviceTarget } from '../devices/resource-types.js';
import type { ContainerAllocateResponse, DeviceSpec, Mount } from '../kubelet-api/proto.js';

export type DeviceListStrategy = 'envvar' | 'volume-mounts' | 'cdi-annotations' | 'cdi-cri';
export type DeviceIdStrategy = 'uuid' | 'index';

export interface AllocateSettings {
  deviceListStrategies: readonly DeviceListStrategy[];
  deviceIdStrategy: DeviceIdStrategy;
  passDeviceSpecs: boolean;
  /** host root that device node paths are resolved under (NVIDIA's nvidiaDevRoot, `/` by default) */
  devRoot: string;
  /** control nodes present on the host (`/dev/nvidiactl`, `/dev/nvidia-uvm`, ...), container paths */
  controlDeviceNodes: readonly string[];
  /** `cdi.k8s.io/` */
  cdiAnnotationPrefix: string;
  /** CDI kind the names are built from: `nvidia.com/gpu` gives `nvidia.com/gpu=<id>` */
  cdiKind: string;
  /** extra NVIDIA_* envs turned on by gdrcopyEnabled / gdsEnabled / mofedEnabled */
  extraEnvs: Readonly<Record<string, string>>;
}

const VISIBLE_DEVICES_ENV = 'NVIDIA_VISIBLE_DEVICES';
/** Where the volume-mounts strategy lists devices: one empty file per device, as the NVIDIA runtime reads it. */
const CONTAINER_DEVICES_DIR = '/var/run/nvidia-container-devices';

/** The distinct physical targets behind the allocated devices, in first-seen order. */
export function distinctTargets(devices: readonly AdvertisedDevice[]): DeviceTarget[] {
  const seen = new Map<string, DeviceTarget>();
  for (const device of devices)
    if (!seen.has(device.target.uuid)) seen.set(device.target.uuid, device.target);
  return [...seen.values()];
}

function targetId(target: DeviceTarget, strategy: DeviceIdStrategy): string {
  return strategy === 'index' ? target.index : target.uuid;
}

function isCdi(strategy: DeviceListStrategy): boolean {
  return strategy === 'cdi-annotations' || strategy === 'cdi-cri';
}

export function containerAllocateResponse(
  devices: readonly AdvertisedDevice[],
  settings: AllocateSettings,
): ContainerAllocateResponse {
  const targets = distinctTargets(devices);
  const ids = targets.map((t) => targetId(t, settings.deviceIdStrategy));
  const envs: Record<string, string> = {};
  const mounts: Mount[] = [];
  const annotations: Record<string, string> = {};
  const cdiNames = ids.map((id) => `${settings.cdiKind}=${id}`);
  const strategies = new Set(settings.deviceListStrategies);

  if (strategies.has('cdi-annotations')) {
    // One annotation per response; the key must be unique per container and at most 63 chars after the prefix.
    annotations[`${settings.cdiAnnotationPrefix}vgpu-agent_${targets[0]?.uuid ?? 'none'}`] =
      cdiNames.join(',');
  }
  const cdiDevices = strategies.has('cdi-cri') ? cdiNames.map((name) => ({ name })) : [];

  // With CDI only, the runtime injects devices from the spec; the NVIDIA runtime env would duplicate them.
  const onlyCdi = settings.deviceListStrategies.every(isCdi);
  if (!onlyCdi) {
    if (strategies.has('envvar')) envs[VISIBLE_DEVICES_ENV] = ids.join(',');
    if (strategies.has('volume-mounts')) {
      envs[VISIBLE_DEVICES_ENV] = CONTAINER_DEVICES_DIR;
      for (const id of ids) {
        mounts.push({ container_path: path.posix.join(CONTAINER_DEVICES_DIR, id), host_path: '/dev/null' });
      }
    }
    Object.assign(envs, settings.extraEnvs);
  }

  const deviceSpecs: DeviceSpec[] = settings.passDeviceSpecs
    ? [...settings.controlDeviceNodes, ...new Set(targets.flatMap((t) => t.deviceNodes))].map((node) => ({
        container_path: node,
        host_path: path.posix.join(settings.devRoot, node),
        permissions: 'rw',
      }))
    : [];

  return { envs, mounts, devices: deviceSpecs, annotations, cdi_devices: cdiDevices };
}
