/**
 * Split slices' host directories: the plugin gives each split container a directory
 * `<hookPath>/containers/<allocation>/` holding allocation.json (resource, device IDs, per-GPU limits)
 * and, once a process used the GPU, HAMi-core's shared region `<allocation>.cache`. HAMi mode's
 * containers (`sharing.hami`) get the same, `<pod UID>_<container>`, with the GPUs and limits HAMi's
 * scheduler chose.
 *
 * Each scan joins every directory to its container through the device IDs kubelet allocated (the
 * DeviceAssignmentSource, PodResources in the agent), and reports per container and GPU the limits and
 * HAMi-core's own usage. Device IDs are reused by later containers, so when several directories name
 * the same IDs the newest belongs to the container holding them now. Directories no container holds any
 * more are handed to the garbage collector (split-gc.ts). A scan never throws: what cannot be read is
 * logged once and left out. Each directory's allocation.json is parsed once per version of the file:
 * kept by (inode, size, mtime), read again only when one of them changes, forgotten when the directory
 * goes (a stat per scan instead of a read and a schema check: the plugin writes the file once).
 */
import type { BigIntStats } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { parseDeviceId } from '../devices/resources.js';
import type { ContainerNames } from './containers.js';
import { type RegionProcess, readSharedRegion, type SharedRegion, SharedRegionError } from './hami-region.js';
import type { HamiCoreUsage, SplitUsage } from './snapshot.js';
import { regionFile, SplitGarbageCollector } from './split-gc.js';

/** One container's devices of one resource, as kubelet allocated them (PodResources List). */
export interface DeviceAssignment {
  names: ContainerNames;
  /** `nvidia.com/gpu`, ... */
  resource: string;
  /** the IDs the plugin advertised: `GPU-…::3` for a slice */
  deviceIds: readonly string[];
}

export interface DeviceAssignmentSource {
  /**
   * Every container's device IDs now; undefined when the source could not be asked (kubelet's
   * PodResources socket down): nothing is joined and, above all, nothing is deleted.
   */
  assignments(): Promise<readonly DeviceAssignment[] | undefined>;
}

const MiB = 1024 * 1024;
const ALLOCATION_FILE = 'allocation.json';
/** allocation.json is a few hundred bytes; anything far larger is not the plugin's */
const ALLOCATION_FILE_MAX_BYTES = 64 * 1024;
export const DEFAULT_SPLIT_GRACE_PERIOD_MS = 5 * 60_000;
/** directories read at once */
const FILE_CONCURRENCY = 8;

const allocationFileSchema = z.object({
  resource: z.string().min(1),
  deviceIds: z.array(z.string().min(1)).min(1),
  allocatedAt: z.string().optional(),
  /** per GPU in the container's device order; absent in files of plugins before the monitor */
  limits: z
    .array(z.object({ uuid: z.string(), memoryMiB: z.number().nonnegative(), corePercent: z.number() }))
    .optional(),
});
export type AllocationFile = z.infer<typeof allocationFileSchema>;

/** One directory under `<hookPath>/containers/`. */
export interface AllocationDirectory {
  name: string;
  dir: string;
  modifiedMs: number;
  /** undefined when allocation.json is missing or not the plugin's (such a directory is left alone) */
  allocation?: AllocationFile;
}

export interface SplitDirectoriesOptions {
  /** `split.hookPath`, the plugin's: directories are under `<hookPath>/containers/` */
  hookPath: string;
  assignments: DeviceAssignmentSource;
  /** the node's GPUs (UUID → NVML index) */
  gpus: readonly { uuid: string; index: number }[];
  /** how long a directory stays unallocated before it is removed; default 5 minutes */
  gracePeriodMs?: number;
  /** host /proc (`--host-proc`), for its `locks` file */
  hostProc?: string;
  logger: Logger;
  now?: () => number;
}

export class SplitDirectories {
  private readonly logger: Logger;
  private readonly gpuIndex: ReadonlyMap<string, number>;
  private readonly gc: SplitGarbageCollector;
  /** problems already logged, per directory or file: each is logged once, again after it cleared */
  private readonly reported = new Map<string, string>();
  /** per directory, its allocation.json as parsed and the version of the file it was parsed from */
  private readonly allocations = new Map<string, { version: string; allocation: AllocationFile }>();

  constructor(private readonly options: SplitDirectoriesOptions) {
    this.logger = options.logger.child({ component: 'split-directories' });
    this.gpuIndex = new Map(options.gpus.map((g) => [g.uuid, g.index]));
    this.gc = new SplitGarbageCollector({
      gracePeriodMs: options.gracePeriodMs ?? DEFAULT_SPLIT_GRACE_PERIOD_MS,
      hostProc: options.hostProc ?? '/proc',
      logger: this.logger,
      now: options.now ?? Date.now,
    });
  }

  get containersDir(): string {
    return path.join(this.options.hookPath, 'containers');
  }

  /** Limits and HAMi-core usage of every split container now; collects garbage when kubelet answered. */
  async scan(): Promise<SplitUsage[]> {
    const directories = await this.listDirectories();
    const assignments = await this.askAssignments();
    if (!assignments) return [];
    const matched = joinDirectories(directories, assignments);
    const usage = (await mapConcurrently([...matched], ([d, a]) => this.usageOf(d, a))).flat();
    await this.gc.collect(unassignedDirectories(directories, matched, assignments));
    return usage;
  }

  private async askAssignments(): Promise<readonly DeviceAssignment[] | undefined> {
    try {
      const assignments = await this.options.assignments.assignments();
      this.clearProblem('assignments');
      return assignments;
    } catch (err) {
      this.reportProblem('assignments', String(err), { err }, 'cannot read device allocations');
      return undefined;
    }
  }

  private async listDirectories(): Promise<AllocationDirectory[]> {
    let names: string[];
    try {
      names = (await readdir(this.containersDir, { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.reportProblem(this.containersDir, String(err), { err }, 'cannot list split directories');
      return [];
    }
    const read = await mapConcurrently(names.sort(), (name) => this.readDirectory(name));
    const directories = read.filter((d): d is AllocationDirectory => d !== undefined);
    const present = new Set(directories.map((d) => d.dir));
    this.forgetProblemsOutside(present);
    for (const dir of this.allocations.keys()) if (!present.has(dir)) this.allocations.delete(dir);
    return directories;
  }

  private async readDirectory(name: string): Promise<AllocationDirectory | undefined> {
    const dir = path.join(this.containersDir, name);
    let modifiedMs: number;
    try {
      modifiedMs = (await stat(dir)).mtimeMs;
    } catch {
      return undefined; // removed meanwhile
    }
    const file = path.join(dir, ALLOCATION_FILE);
    const read = await this.allocationOf(dir, file);
    if (typeof read === 'string') {
      this.reportProblem(dir, read, { file }, `${read}: the directory is left alone`);
      return { name, dir, modifiedMs };
    }
    this.clearProblem(dir);
    return { name, dir, modifiedMs, allocation: read };
  }

  /** The directory's allocation.json, parsed again only when the file changed; or what is wrong with it. */
  private async allocationOf(dir: string, file: string): Promise<AllocationFile | string> {
    let info: BigIntStats;
    try {
      info = await stat(file, { bigint: true });
    } catch (err) {
      this.allocations.delete(dir);
      return `${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    }
    const version = `${info.ino}:${info.size}:${info.mtimeNs}`;
    const cached = this.allocations.get(dir);
    if (cached?.version === version) return cached.allocation;
    const read = await readAllocationFile(file, Number(info.size));
    // Only a parsed file is kept: one being written (not JSON yet) or unreadable is tried again.
    if (typeof read === 'string') this.allocations.delete(dir);
    else this.allocations.set(dir, { version, allocation: read });
    return read;
  }

  /** One SplitUsage per GPU of the allocation that this node has. */
  private async usageOf(directory: AllocationDirectory, assignment: DeviceAssignment): Promise<SplitUsage[]> {
    const allocation = directory.allocation!;
    const region = await this.readRegion(directory);
    const gpus = allocation.limits?.map((l) => l.uuid) ?? gpusOf(allocation.deviceIds);
    const deviceIds = deviceIdsByGpu(allocation.deviceIds, gpus);
    const usage: SplitUsage[] = [];
    gpus.forEach((uuid, i) => {
      const gpuIndex = this.gpuIndex.get(uuid);
      if (gpuIndex === undefined) return;
      const entry: SplitUsage = {
        device: { uuid, gpuUuid: uuid, gpuIndex },
        names: { ...assignment.names },
        allocation: directory.name,
        deviceIds: deviceIds[i]!,
        deviceIndex: i,
      };
      const limits = allocation.limits?.[i];
      const regionDevice = region && regionDeviceOf(region, uuid, i);
      const memoryLimit = limits ? limits.memoryMiB * MiB : regionDevice?.memoryLimitBytes;
      if (memoryLimit) entry.memoryLimitBytes = memoryLimit;
      const smPercent = limits?.corePercent ?? regionDevice?.smLimitPercent;
      if (smPercent !== undefined) entry.smLimitRatio = Math.min(smPercent, 100) / 100;
      if (region && regionDevice) entry.hami = hamiUsage(region, regionDevice.index);
      usage.push(entry);
    });
    return usage;
  }

  /** The region, or undefined when there is none yet (no process used the GPU) or it is unreadable. */
  private async readRegion(directory: AllocationDirectory): Promise<SharedRegion | undefined> {
    const file = regionFile(directory);
    try {
      const region = await readSharedRegion(file);
      this.clearProblem(file);
      return region;
    } catch (err) {
      const quiet = err instanceof SharedRegionError && ['missing', 'uninitialized'].includes(err.problem);
      if (!quiet) this.reportProblem(file, String(err), { err }, 'cannot read HAMi-core shared region');
      return undefined;
    }
  }

  private reportProblem(key: string, problem: string, fields: object, message: string): void {
    if (this.reported.get(key) === problem) return;
    this.reported.set(key, problem);
    this.logger.warn({ ...fields, where: key }, message);
  }

  private clearProblem(key: string): void {
    this.reported.delete(key);
  }

  private forgetProblemsOutside(dirs: ReadonlySet<string>): void {
    for (const key of this.reported.keys()) {
      const owner = key.endsWith('.cache') ? path.dirname(key) : key;
      if (owner.startsWith(this.containersDir) && !dirs.has(owner)) this.reported.delete(key);
    }
  }
}

/** The parsed file (`size` bytes when it was looked at), or what is wrong with it. */
async function readAllocationFile(file: string, size: number): Promise<AllocationFile | string> {
  if (size > ALLOCATION_FILE_MAX_BYTES) return `${file} is ${size} bytes, not the plugin's allocation file`;
  try {
    const parsed = allocationFileSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (!parsed.success)
      return `${file} is not the plugin's allocation file: ${parsed.error.issues[0]?.message}`;
    return parsed.data;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${file}: ${code}` : `${file} is not JSON`;
  }
}

/**
 * `fn` over `items`, a few at a time, results in order: file reads overlap, yet their completions do
 * not all land in one event-loop turn.
 */
async function mapConcurrently<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(FILE_CONCURRENCY, items.length) }, worker));
  return results;
}

/** The physical GPUs of slice IDs (`<uuid>::<n>`), in order. */
function gpusOf(deviceIds: readonly string[]): string[] {
  return [...new Set(deviceIds.map((id) => id.split('::')[0]!))];
}

/**
 * For each of the directory's GPUs, the device IDs that stand for it: an ID naming one of them (a
 * slice's `<uuid>::<n>`) stands for its own; any other stands for the GPU at its position. That is HAMi
 * mode: kubelet's `<uuid>-<n>` only counts replicas, HAMi's scheduler chose the GPUs, and the plugin
 * writes them (limits) in the order of kubelet's IDs, one each.
 */
function deviceIdsByGpu(deviceIds: readonly string[], gpus: readonly string[]): string[][] {
  const byGpu = gpus.map((): string[] => []);
  deviceIds.forEach((id, position) => {
    const own = gpus.indexOf(parseDeviceId(id)?.uuid ?? '');
    byGpu[own >= 0 ? own : position]?.push(id);
  });
  return byGpu;
}

function assignmentKey(resource: string, deviceIds: readonly string[]): string {
  return `${resource}\n${[...deviceIds].sort().join('\n')}`;
}

function newerFirst(a: AllocationDirectory, b: AllocationDirectory): number {
  const byTime = (b.allocation?.allocatedAt ?? '').localeCompare(a.allocation?.allocatedAt ?? '');
  return byTime !== 0 ? byTime : b.modifiedMs - a.modifiedMs;
}

/**
 * Each container's directory: the newest one naming exactly its device IDs of that resource (kubelet
 * calls Allocate once per container and resource). Older ones with the same IDs were earlier holders'.
 */
export function joinDirectories(
  directories: readonly AllocationDirectory[],
  assignments: readonly DeviceAssignment[],
): Map<AllocationDirectory, DeviceAssignment> {
  const byKey = new Map<string, AllocationDirectory[]>();
  for (const d of directories) {
    if (!d.allocation) continue;
    const key = assignmentKey(d.allocation.resource, d.allocation.deviceIds);
    byKey.set(key, [...(byKey.get(key) ?? []), d]);
  }
  const matched = new Map<AllocationDirectory, DeviceAssignment>();
  for (const assignment of assignments) {
    const candidates = byKey.get(assignmentKey(assignment.resource, assignment.deviceIds));
    const newest = candidates?.sort(newerFirst)[0];
    if (newest) matched.set(newest, assignment);
  }
  return matched;
}

/**
 * Directories no container holds: not joined, and none of their device IDs held by a container that
 * has no directory of its own (a directory that might still be that container's is never offered).
 */
export function unassignedDirectories(
  directories: readonly AllocationDirectory[],
  matched: ReadonlyMap<AllocationDirectory, DeviceAssignment>,
  assignments: readonly DeviceAssignment[],
): AllocationDirectory[] {
  const joined = new Set(matched.values());
  const heldWithoutDirectory = new Set(
    assignments.filter((a) => !joined.has(a)).flatMap((a) => a.deviceIds.map((id) => `${a.resource}\n${id}`)),
  );
  return directories.filter(
    (d) =>
      d.allocation &&
      !matched.has(d) &&
      !d.allocation.deviceIds.some((id) => heldWithoutDirectory.has(`${d.allocation!.resource}\n${id}`)),
  );
}

/** The region's entry for a GPU: by the UUID HAMi-core recorded, else by position. */
function regionDeviceOf(region: SharedRegion, uuid: string, position: number) {
  return (
    region.devices.find((d) => d.uuid === uuid) ??
    (region.devices[position]?.uuid === undefined ? region.devices[position] : undefined)
  );
}

function hamiUsage(region: SharedRegion, index: number): HamiCoreUsage {
  const sum = (pick: (p: RegionProcess) => number) => region.processes.reduce((s, p) => s + pick(p), 0);
  const usage: HamiCoreUsage = {
    deviceIndex: index,
    memoryUsedBytes: sum((p) => p.devices[index]?.totalBytes ?? 0),
    contextBytes: sum((p) => p.devices[index]?.contextBytes ?? 0),
    moduleBytes: sum((p) => p.devices[index]?.moduleBytes ?? 0),
    dataBytes: sum((p) => p.devices[index]?.dataBytes ?? 0),
    smUtilPercent: sum((p) => p.devices[index]?.smUtilPercent ?? 0),
    processCount: region.processes.length,
  };
  if (region.lastKernelTimeSeconds > 0) usage.lastKernelTimeSeconds = region.lastKernelTimeSeconds;
  return usage;
}
