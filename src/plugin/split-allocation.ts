/**
 * What a container of split slices needs for HAMi-core to enforce the limits (HAMi's contract):
 * per-GPU memory limits and an SM limit in the environment, libvgpu.so preloaded through a mounted
 * /etc/ld.so.preload, and a per-container directory for its shared-region cache file.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AdvertisedDevice } from '../devices/resource-types.js';
import { distinctTargets } from './allocate-response.js';
import type { ContainerAllocateResponse, Mount } from './proto.js';

export interface HookLibrary {
  /** `split.hookPath`: where HAMi-core is installed on the host (same path inside the agent) */
  hookPath: string;
  /** host file of libvgpu.so (the highest versioned one), or null when HAMi-core is not installed */
  library: string | null;
  /** host file holding the preload line, or null */
  preload: string | null;
}

/**
 * Finds libvgpu.so under hookPath. Prefers a versioned file (`libvgpu.so.2.5.0`): replacing a
 * library that running containers have mapped crashes them, so installers add new versions beside.
 */
export async function detectHookLibrary(hookPath: string): Promise<HookLibrary> {
  let entries: string[];
  try {
    entries = await readdir(hookPath);
  } catch {
    return { hookPath, library: null, preload: null };
  }
  const versioned = entries
    .filter((name) => /^libvgpu\.so\.\d+(\.\d+)*$/.test(name))
    .sort((a, b) => compareVersions(a.slice('libvgpu.so.'.length), b.slice('libvgpu.so.'.length)));
  const library = versioned.at(-1) ?? (entries.includes('libvgpu.so') ? 'libvgpu.so' : undefined);
  return {
    hookPath,
    library: library ? path.join(hookPath, library) : null,
    preload: entries.includes('ld.so.preload') ? path.join(hookPath, 'ld.so.preload') : null,
  };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The part that needs no host: env values for the slices, per GPU in NVIDIA_VISIBLE_DEVICES order. */
export function splitLimitEnvs(devices: readonly AdvertisedDevice[]): Record<string, string> {
  const envs: Record<string, string> = {};
  distinctTargets(devices).forEach((target, i) => {
    const slices = devices.filter((d) => d.target.uuid === target.uuid && d.slice);
    const memoryMiB = slices.reduce((sum, d) => sum + d.slice!.memoryMiB, 0);
    const corePercent = Math.min(
      100,
      slices.reduce((sum, d) => sum + d.slice!.corePercent, 0),
    );
    envs[`CUDA_DEVICE_MEMORY_LIMIT_${i}`] = `${memoryMiB}m`;
    envs[`CUDA_DEVICE_SM_LIMIT_${i}`] = String(corePercent);
    // HAMi-core reads one SM limit for every device; HAMi sets it from the first one.
    if (i === 0) envs.CUDA_DEVICE_SM_LIMIT = String(corePercent);
  });
  return envs;
}

/** Container paths, mirroring HAMi so images built for HAMi-core work unchanged. */
function containerPaths(hookPath: string) {
  const dir = path.posix.join(hookPath, 'vgpu');
  return { dir, library: path.posix.join(dir, 'libvgpu.so'), lock: '/tmp/vgpulock' };
}

export class SplitAllocator {
  /** Built when a config with split resources is applied: that is when the missing library is reported. */
  constructor(
    private readonly hook: HookLibrary,
    logger: Logger,
  ) {
    if (!this.enforced) {
      logger.warn(
        { hookPath: hook.hookPath, library: hook.library, preload: hook.preload },
        'HAMi-core (libvgpu.so and ld.so.preload) not found under split.hookPath: slices are advertised ' +
          'but their memory and compute limits are NOT enforced (see vgpu_agent_split_limits_enforced)',
      );
    }
  }

  get enforced(): boolean {
    return this.hook.library !== null && this.hook.preload !== null;
  }

  /** Adds the HAMi-core env and mounts to a response; creates the container's cache directory. */
  async extend(
    devices: readonly AdvertisedDevice[],
    response: ContainerAllocateResponse,
    resource: string,
  ): Promise<void> {
    const inContainer = containerPaths(this.hook.hookPath);
    const allocation = randomUUID();
    response.envs = { ...response.envs, ...splitLimitEnvs(devices) };
    response.envs.CUDA_DEVICE_MEMORY_SHARED_CACHE = path.posix.join(inContainer.dir, `${allocation}.cache`);
    if (!this.enforced) return;
    // One host directory per container: HAMi-core's shared region lives there, visible to the monitor.
    const hostDir = path.join(this.hook.hookPath, 'containers', allocation);
    await mkdir(hostDir, { recursive: true });
    await chmod(hostDir, 0o777); // the container's user, whoever it is, writes its cache file here
    await writeFile(
      path.join(hostDir, 'allocation.json'),
      `${JSON.stringify({ resource, deviceIds: devices.map((d) => d.id), allocatedAt: new Date().toISOString() })}\n`,
    );
    const mounts: Mount[] = [
      { container_path: inContainer.dir, host_path: hostDir, read_only: false },
      { container_path: inContainer.library, host_path: this.hook.library!, read_only: true },
      { container_path: '/etc/ld.so.preload', host_path: this.hook.preload!, read_only: true },
      { container_path: inContainer.lock, host_path: inContainer.lock, read_only: false },
    ];
    response.mounts = [...(response.mounts ?? []), ...mounts];
  }
}
