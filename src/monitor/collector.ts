/**
 * The monitor's collection loop: on a fixed interval (default 5 s) it reads every monitored device
 * through NVML, attributes each process to its pod and container through the host /proc, and
 * publishes the result as one immutable snapshot. /metrics and everything else read the latest
 * snapshot, so scrapes never call NVML and any number of scrapers cost the same.
 *
 * Collections never overlap: a tick that comes while one is still running is skipped and counted as
 * an overrun. A device that fails marks only itself down; the others keep reporting. The devices
 * come from the node inventory (read once at start); NVML handles are looked up once and reused.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Inventory } from '../devices/inventory-types.js';
import { ThrottledWarning } from '../throttled-warning.js';
import { summarizeUsage } from './attribution.js';
import { type AllocationSource, type ContainerNamer, NO_ALLOCATIONS, NO_NAMES } from './containers.js';
import { type DeviceSample, DeviceSampler, type SamplerNvml, type SamplerRole } from './device-sampler.js';
import type { HostProcess } from './proc.js';
import {
  type DeviceSnapshot,
  deepFreeze,
  type GpuFacts,
  type MonitoredDevice,
  type MonitorSnapshot,
  type ProcessUsage,
  type SplitUsage,
} from './snapshot.js';
import { withSplitDeviceIds } from './split-allocations.js';

const DEFAULT_COLLECTION_INTERVAL_MS = 5000;
const PROC_WARNING_INTERVAL_MS = 60_000;
/**
 * /proc lookups in flight at once. All at once, their completions land in one event-loop turn: with
 * 512 GPU processes that held the loop for 30-50 ms on a loaded 2-core machine, 8 at a time ~10 ms.
 */
const PROC_LOOKUP_CONCURRENCY = 8;

/** The host /proc as the collector uses it (HostProcesses, or a stand-in). */
export interface ProcessDirectory {
  lookup(pid: number): Promise<HostProcess | undefined>;
  retainOnly(live: ReadonlySet<number>): void;
}

/** Told of each finished collection and each skipped tick (the monitor's own metrics listen here). */
export interface CollectorHooks {
  onCollected?(snapshot: MonitorSnapshot): void;
  onOverrun?(): void;
}

/** Split slices' limits and HAMi-core usage, read once per collection (SplitDirectories). */
export interface SplitUsageSource {
  scan(): Promise<readonly SplitUsage[]>;
}

export interface CollectorOptions {
  nvml: SamplerNvml;
  inventory: Inventory;
  hostProcesses: ProcessDirectory;
  /** names from the API server or the CRI; default: none (series carry pod_uid / container_id) */
  namer?: ContainerNamer;
  /** allocations from PodResources; default: none (nothing is called unallocated) */
  allocations?: AllocationSource;
  /** split containers' limits and HAMi-core usage (SplitDirectories); default: none */
  splits?: SplitUsageSource;
  intervalMs?: number;
  hooks?: CollectorHooks;
  logger: Logger;
  /** wall clock for snapshot times (ms since the epoch) */
  now?: () => number;
}

export class Collector {
  private readonly samplers: DeviceSampler[];
  private readonly gpus: readonly GpuFacts[];
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly procWarning: ThrottledWarning;
  private readonly down = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<MonitorSnapshot> | undefined;
  private last: MonitorSnapshot | undefined;

  constructor(private readonly options: CollectorOptions) {
    this.intervalMs = options.intervalMs ?? DEFAULT_COLLECTION_INTERVAL_MS;
    this.now = options.now ?? Date.now;
    this.logger = options.logger.child({ component: 'monitor-collector' });
    this.procWarning = new ThrottledWarning(
      this.logger,
      'cannot read a process in the host /proc',
      PROC_WARNING_INTERVAL_MS,
    );
    this.gpus = deepFreeze(options.inventory.gpus.map(gpuFacts));
    this.samplers = samplersFor(options.nvml, options.inventory);
  }

  /** The latest snapshot; undefined until the first collection is done (not ready). */
  get latest(): MonitorSnapshot | undefined {
    return this.last;
  }

  /** Collects now, then every interval until stop(). */
  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  /** Stops the interval and waits for a collection in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One collection now; while one runs, its result (collections never overlap). */
  collectOnce(): Promise<MonitorSnapshot> {
    this.running ??= this.collect().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async tick(): Promise<void> {
    if (this.running) {
      this.options.hooks?.onOverrun?.();
      return;
    }
    try {
      await this.collectOnce();
    } catch (err) {
      this.logger.error({ err }, 'monitor collection failed');
    }
  }

  private async collect(): Promise<MonitorSnapshot> {
    const takenAtMs = this.now();
    const started = performance.now();
    const samples: [DeviceSampler, DeviceSample][] = [];
    for (const sampler of this.samplers) {
      samples.push([sampler, sampler.sample()]);
      await yieldToEventLoop(); // one device's calls at a time on the loop, never the whole sweep
    }
    const pids = new Set(samples.flatMap(([, s]) => (s.up ? s.processes.map((p) => p.pid) : [])));
    const found = await this.lookupProcesses(pids);
    this.options.hostProcesses.retainOnly(pids);
    const devices = samples.map(([sampler, sample]) => this.deviceSnapshot(sampler, sample, found));
    const splits = await this.scanSplits();
    const allocations = withSplitDeviceIds(this.options.allocations ?? NO_ALLOCATIONS, splits);
    const usage = summarizeUsage(devices, this.options.namer ?? NO_NAMES, allocations);
    const { inventory } = this.options;
    this.last = deepFreeze({
      takenAtMs,
      durationSeconds: (performance.now() - started) / 1000,
      driverVersion: inventory.driverVersion,
      cudaDriverVersion: inventory.cudaDriverVersion,
      gpus: this.gpus,
      devices,
      ...usage,
      processesNotInProc: [...pids].filter((pid) => !found.has(pid)).length,
      ...(splits && { splits }),
      allocations: [...(allocations.allocations?.() ?? [])],
    });
    this.options.hooks?.onCollected?.(this.last);
    return this.last;
  }

  /** Split containers' figures; a failing scan costs only those (the scanner logs its own problems). */
  private async scanSplits(): Promise<readonly SplitUsage[] | undefined> {
    if (!this.options.splits) return undefined;
    try {
      return await this.options.splits.scan();
    } catch (err) {
      this.logger.error({ err }, 'split directories scan failed');
      return [];
    }
  }

  /** Every PID's /proc entry, a few at a time; missing ones (exited, unreadable) are left out. */
  private async lookupProcesses(pids: ReadonlySet<number>): Promise<Map<number, HostProcess>> {
    const found = new Map<number, HostProcess>();
    const queue = [...pids];
    const worker = async (): Promise<void> => {
      for (let pid = queue.pop(); pid !== undefined; pid = queue.pop()) {
        try {
          const process = await this.options.hostProcesses.lookup(pid);
          if (process) found.set(pid, process);
        } catch (err) {
          this.procWarning.warn({ err, pid });
        }
      }
    };
    await Promise.all(Array.from({ length: PROC_LOOKUP_CONCURRENCY }, worker));
    return found;
  }

  private deviceSnapshot(
    sampler: DeviceSampler,
    sample: DeviceSample,
    found: ReadonlyMap<number, HostProcess>,
  ): DeviceSnapshot {
    const { device } = sampler;
    this.noteDeviceState(device.uuid, sample);
    if (!sample.up) return { device, up: false, error: sample.error, readings: {}, processes: [] };
    const processes: ProcessUsage[] = [];
    for (const p of sample.processes) {
      const process = found.get(p.pid);
      if (process) processes.push({ ...p, owner: process.owner });
    }
    return { device, up: true, readings: sample.readings, processes };
  }

  /** Logs a device going down and coming back, once each. */
  private noteDeviceState(uuid: string, sample: DeviceSample): void {
    if (!sample.up && !this.down.has(uuid)) {
      this.down.add(uuid);
      this.logger.warn({ device: uuid, error: sample.error }, 'GPU device cannot be read; reported down');
    } else if (sample.up && this.down.delete(uuid)) {
      this.logger.info({ device: uuid }, 'GPU device answers again');
    }
  }
}

function gpuFacts(gpu: Inventory['gpus'][number]): GpuFacts {
  return {
    uuid: gpu.uuid,
    index: gpu.index,
    model: gpu.name,
    busId: gpu.busId,
    migMode: gpu.migEnabled ? 'enabled' : gpu.migCapable ? 'disabled' : 'unsupported',
  };
}

/** One sampler per monitored device. */
function samplersFor(nvml: SamplerNvml, inventory: Inventory): DeviceSampler[] {
  return monitoredDevices(inventory).map(({ device, role }) => new DeviceSampler(nvml, device, role));
}

/**
 * The devices the monitor reads, in exposition order: each GPU, then each MIG device of a MIG-enabled
 * GPU (memory and processes live there), with what is read on each.
 */
export function monitoredDevices(inventory: Inventory): { device: MonitoredDevice; role: SamplerRole }[] {
  const devices: { device: MonitoredDevice; role: SamplerRole }[] = [];
  for (const gpu of inventory.gpus) {
    const whole = !gpu.migEnabled;
    devices.push({
      device: { uuid: gpu.uuid, gpuUuid: gpu.uuid, gpuIndex: gpu.index },
      role: { board: true, utilization: whole, memoryAndProcesses: whole },
    });
    for (const mig of gpu.migEnabled ? gpu.migDevices : []) {
      const { gpuInstanceId, computeInstanceId, profile } = mig;
      devices.push({
        device: {
          uuid: mig.uuid,
          gpuUuid: gpu.uuid,
          gpuIndex: gpu.index,
          mig: { gpuInstanceId, computeInstanceId, profile },
        },
        role: { board: false, utilization: false, memoryAndProcesses: true },
      });
    }
  }
  return devices;
}
