/**
 * What a container of split slices needs for HAMi-core to enforce the limits (HAMi's contract):
 * per-GPU memory limits and an SM limit in the environment and, when the host has HAMi-core
 * (see hami-core-host.ts), the library mounted where the host's ld.so.preload names it, that preload
 * file as /etc/ld.so.preload, a per-container directory at hookPath for the shared-region cache file,
 * and HAMi-core's host-wide lock directory.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AdvertisedDevice } from '../devices/resource-types.js';
import type { ContainerAllocateResponse, Mount } from '../kubelet-api/proto.js';
import {
  enforcementProblem,
  type HamiCoreHost,
  installAdvice,
  limitsEnforced,
  preloadPlan,
} from '../runtime/hami-core-host.js';
import { distinctTargets } from './allocate-response.js';

/**
 * HAMi-core's lock directory, the same host directory in every container so that processes of
 * different containers on one GPU see each other's lock files. The agent creates it in its own /tmp,
 * which must therefore be the host's /tmp (a hostPath volume) for the mount to mean the same place.
 */
export const HAMI_LOCK_DIR = '/tmp/vgpulock';

/**
 * One GPU's limits in a split container, in NVIDIA_VISIBLE_DEVICES order (HAMi-core's device index).
 * Also written to the container directory's allocation.json, where the monitor reads them.
 */
export interface SplitGpuLimits {
  uuid: string;
  memoryMiB: number;
  corePercent: number;
}

/** The slices' limits added up per GPU; compute capped at the whole GPU. */
export function splitGpuLimits(devices: readonly AdvertisedDevice[]): SplitGpuLimits[] {
  return distinctTargets(devices).map((target) => {
    const slices = devices.filter((d) => d.target.uuid === target.uuid && d.slice);
    return {
      uuid: target.uuid,
      memoryMiB: slices.reduce((sum, d) => sum + d.slice!.memoryMiB, 0),
      corePercent: Math.min(
        100,
        slices.reduce((sum, d) => sum + d.slice!.corePercent, 0),
      ),
    };
  });
}

/** The part that needs no host: env values for the slices, per GPU in NVIDIA_VISIBLE_DEVICES order. */
function splitLimitEnvs(limits: readonly SplitGpuLimits[]): Record<string, string> {
  const envs: Record<string, string> = {};
  limits.forEach(({ memoryMiB, corePercent }, i) => {
    envs[`CUDA_DEVICE_MEMORY_LIMIT_${i}`] = `${memoryMiB}m`;
    envs[`CUDA_DEVICE_SM_LIMIT_${i}`] = String(corePercent);
    // HAMi-core reads one SM limit for every device; HAMi sets it from the first one.
    if (i === 0) envs.CUDA_DEVICE_SM_LIMIT = String(corePercent);
  });
  return envs;
}

/** One container's HAMi-core set-up: where its files go on the host. */
export interface HamiCoreContainer {
  /**
   * `containers/<containerDir>` under hookPath on the host; the shared-region file is
   * `<containerDir>.cache` in it, the name the monitor looks for (split-gc.ts `regionFile`)
   */
  containerDir: string;
  /** written as allocation.json in that directory: who the container is, for people and the monitor */
  record: object;
  /** mount ld.so.preload (false: the container asked for no HAMi-core control) */
  preload: boolean;
}

export class SplitAllocator {
  readonly enforced: boolean;
  private readonly libraryPaths: readonly string[];

  /** Built when a config with split resources is applied: that is when problems are reported. */
  constructor(
    private readonly host: HamiCoreHost,
    private readonly logger: Logger,
    /** host path of the lock directory; only tests change it */
    private readonly lockDir = HAMI_LOCK_DIR,
  ) {
    this.enforced = limitsEnforced(host);
    const plan = preloadPlan(host);
    this.libraryPaths = plan.libraryPaths;
    if (!this.enforced) {
      logger.warn(
        { hookPath: host.hookPath, preload: host.preload, library: host.library },
        `split slices are advertised but their memory and compute limits are NOT enforced ` +
          `(vgpu_agent_split_limits_enforced 0): ${enforcementProblem(host)}. To fix: ${installAdvice(host.hookPath)}`,
      );
    } else if (plan.otherEntries.length > 0) {
      logger.warn(
        { preload: host.preload, otherEntries: plan.otherEntries },
        `${host.preload!.file} also names ${plan.otherEntries.join(' ')}: it is mounted as /etc/ld.so.preload, ` +
          'so every split container image must have those files or ld.so prints an error in each process',
      );
    }
  }

  /** Adds the HAMi-core env and mounts to a response; creates the container's cache directory. */
  async extend(
    devices: readonly AdvertisedDevice[],
    response: ContainerAllocateResponse,
    resource: string,
  ): Promise<void> {
    const limits = splitGpuLimits(devices);
    response.envs = { ...response.envs, ...splitLimitEnvs(limits) };
    const allocation = randomUUID();
    await this.attach(response, {
      containerDir: allocation,
      record: {
        resource,
        deviceIds: devices.map((d) => d.id),
        allocatedAt: new Date().toISOString(),
        limits, // the monitor reports them before any process writes a shared region
      },
      preload: true,
    });
  }

  /**
   * Mounts HAMi-core into a container whose limits are in `response.envs` already: its own host
   * directory `containers/<containerDir>` (made afresh, as HAMi does) holding the shared-region cache
   * file, the library, `ld.so.preload` unless `preload` is false (HAMi's `CUDA_DISABLE_CONTROL`), and
   * the lock directory. Without HAMi-core on the host nothing is mounted.
   */
  async attach(response: ContainerAllocateResponse, container: HamiCoreContainer): Promise<void> {
    // Without HAMi-core nothing is mounted: a preload file naming a missing library breaks every process.
    if (!this.enforced) return;
    const hostDir = await this.createContainerDir(container.containerDir, container.record);
    await this.ensureLockDir();
    response.envs = {
      ...response.envs,
      CUDA_DEVICE_MEMORY_SHARED_CACHE: path.posix.join(this.host.hookPath, `${container.containerDir}.cache`),
    };
    const mounts = this.mounts(hostDir).filter(
      (m) => container.preload || m.container_path !== '/etc/ld.so.preload',
    );
    response.mounts = [...(response.mounts ?? []), ...mounts];
  }

  /**
   * Parents before children: the library usually lies inside the hookPath directory mount (HAMi's
   * layout), and runtimes mount in order, creating the library's mount point in the host directory.
   */
  private mounts(hostDir: string): Mount[] {
    return [
      { container_path: this.host.hookPath, host_path: hostDir, read_only: false },
      ...this.libraryPaths.map((at) => ({
        container_path: at,
        host_path: this.host.library!,
        read_only: true,
      })),
      { container_path: '/etc/ld.so.preload', host_path: this.host.preload!.file, read_only: true },
      { container_path: HAMI_LOCK_DIR, host_path: this.lockDir, read_only: false },
    ];
  }

  /**
   * One host directory per container: HAMi-core's shared region lives there, visible to the monitor,
   * which joins it to its container and reports the limits `allocation.json` records.
   */
  private async createContainerDir(name: string, record: object): Promise<string> {
    const hostDir = path.join(this.host.hookPath, 'containers', name);
    await rm(hostDir, { recursive: true, force: true });
    await mkdir(hostDir, { recursive: true });
    await chmod(hostDir, 0o777); // the container's user, whoever it is, writes its cache file here
    await writeFile(path.join(hostDir, 'allocation.json'), `${JSON.stringify(record)}\n`);
    return hostDir;
  }

  /**
   * Re-created on every Allocate (a /tmp cleaner may have removed it) and opened to every user: a
   * runtime that creates a missing mount source makes it root-only, and non-root containers then
   * cannot lock.
   */
  private async ensureLockDir(): Promise<void> {
    try {
      await mkdir(this.lockDir, { recursive: true });
      await chmod(this.lockDir, 0o777);
    } catch (err) {
      this.logger.warn(
        { err, dir: this.lockDir },
        'cannot prepare HAMi-core lock directory for split containers',
      );
    }
  }
}
