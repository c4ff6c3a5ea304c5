/**
 * Reads HAMi-core's shared region: the per-container cache file (CUDA_DEVICE_MEMORY_SHARED_CACHE)
 * that libvgpu maps in every CUDA process of a split container, holding that container's limits and
 * each process's accounting. The monitor reports HAMi-core's own figures from it, next to NVML's.
 *
 * Layout: HAMi-core's `shared_region_t` (src/multiprocess/multiprocess_memory_limit.h, version 1.x),
 * offsets checked with gcc's offsetof() on that header for x86-64 (64-bit glibc, 32-byte sem_t). The file is
 * read, never mapped or written: a few positioned reads of the header, the tail and only the process
 * slots in use (a few KiB for a typical container, never more than the region's size), so a read never
 * blocks the event loop and a foreign or half-written file is reported, not trusted.
 */
import { open } from 'node:fs/promises';

/** `initialized_flag` once HAMi-core has set the region up. */
export const REGION_MAGIC = 19920718;
/** The only major version this reader knows (HAMi-core 2.x writes 1.x; 1.2 in 2025-2026). */
export const REGION_MAJOR_VERSION = 1;
export const MAX_DEVICES = 16;
export const MAX_PROCESSES = 1024;

/** Byte offsets in the region (little-endian, LP64). */
const AT = {
  magic: 0,
  major: 4,
  minor: 8,
  deviceCount: 56,
  uuids: 64,
  memoryLimits: 1600,
  smLimits: 1728,
  slots: 1856,
  processCount: 2008896,
  priority: 2008908,
  lastKernelTime: 2008912,
} as const;
const UUID_BYTES = 96;
/** `sizeof(shared_region_t)`; HAMi-core makes the file one byte longer (it writes a byte at this offset). */
export const REGION_BYTES = 2008952;
const TAIL_BYTES = AT.lastKernelTime + 8 - AT.processCount;

/** One process slot (`shrreg_proc_slot_t`). */
export const SLOT = {
  bytes: 1960,
  pid: 0,
  hostPid: 4,
  /** `used[16]`: context, module, data, offset, total, 3 unused (uint64 each) */
  used: 8,
  usedStride: 64,
  monitorUsed: 1032,
  /** `device_util[16]`: dec, enc, sm, 3 unused (uint64 each) */
  util: 1160,
  utilStride: 48,
  status: 1928,
  seqlock: 1936,
} as const;

/** Why a file cannot be read as a region. `uninitialized` is normal for a moment after creation. */
export type RegionProblem = 'missing' | 'uninitialized' | 'truncated' | 'foreign' | 'unsupported' | 'corrupt';

export class SharedRegionError extends Error {
  constructor(
    readonly file: string,
    readonly problem: RegionProblem,
    detail: string,
  ) {
    super(`HAMi-core shared region ${file}: ${detail}`);
    this.name = 'SharedRegionError';
  }
}

/** Per device index (the container's CUDA/NVML order, that of CUDA_DEVICE_MEMORY_LIMIT_<i>). */
export interface RegionDevice {
  index: number;
  /** the GPU's UUID as HAMi-core recorded it (after its first NVML call); undefined before */
  uuid: string | undefined;
  /** 0: no limit */
  memoryLimitBytes: number;
  /** percent of the GPU's SMs, 100 = unlimited */
  smLimitPercent: number;
}

export interface RegionProcessDevice {
  /** HAMi-core's accounting of this process's allocations on the device */
  contextBytes: number;
  moduleBytes: number;
  dataBytes: number;
  totalBytes: number;
  /** NVML's figure for the process, as HAMi-core's watcher last copied it */
  monitorUsedBytes: number;
  /** HAMi-core's last NVML sample for the process, 0-100; kept when the process goes idle */
  smUtilPercent: number;
}

export interface RegionProcess {
  /** PID in the container's namespace */
  pid: number;
  /** what HAMi-core took for the host PID (the container PID on drivers that translate PIDs) */
  hostPid: number;
  /** 1 running, 2 suspended */
  status: number;
  /** indexed like SharedRegion.devices */
  devices: RegionProcessDevice[];
}

export interface SharedRegion {
  file: string;
  version: { major: number; minor: number };
  devices: RegionDevice[];
  /** slots in use (pid and status set); a slot caught mid-update three times running is left out */
  processes: RegionProcess[];
  /** CUDA_TASK_PRIORITY (0 high, 1 default) */
  priority: number;
  /** when a process of the container last launched a kernel, seconds since the epoch; 0 never */
  lastKernelTimeSeconds: number;
}

const SEQLOCK_RETRIES = 3;

/** Reads and validates the region in `file`; throws SharedRegionError naming the file and the problem. */
export async function readSharedRegion(file: string): Promise<SharedRegion> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SharedRegionError(file, 'missing', `cannot open (${code ?? String(err)})`);
  }
  try {
    const { size } = await handle.stat();
    if (size < REGION_BYTES)
      throw new SharedRegionError(
        file,
        'truncated',
        `${size} bytes, shorter than HAMi-core's version-1 region (${REGION_BYTES}): partly written or not a region`,
      );
    const header = await readAt(handle, AT.slots, 0);
    const tail = await readAt(handle, TAIL_BYTES, AT.processCount);
    const layout = parseHeader(file, header, tail);
    const processes = await readProcesses(handle, layout.processCount, layout.devices.length);
    return { file, ...layout.region, processes };
  } finally {
    await handle.close();
  }
}

async function readAt(handle: Awaited<ReturnType<typeof open>>, length: number, position: number) {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
}

interface HeaderLayout {
  region: Omit<SharedRegion, 'file' | 'processes'>;
  processCount: number;
  devices: RegionDevice[];
}

/** The fixed part: magic, version, devices and limits, process count. */
export function parseHeader(file: string, header: Buffer, tail: Buffer): HeaderLayout {
  if (header.length < AT.slots || tail.length < TAIL_BYTES)
    throw new SharedRegionError(file, 'truncated', 'the file shrank while being read');
  const magic = header.readInt32LE(AT.magic);
  if (magic === 0) throw new SharedRegionError(file, 'uninitialized', 'not initialised by HAMi-core yet');
  if (magic !== REGION_MAGIC)
    throw new SharedRegionError(file, 'foreign', `magic ${magic} is not HAMi-core's ${REGION_MAGIC}`);
  const version = { major: header.readUInt32LE(AT.major), minor: header.readUInt32LE(AT.minor) };
  if (version.major !== REGION_MAJOR_VERSION)
    throw new SharedRegionError(
      file,
      'unsupported',
      `layout version ${version.major}.${version.minor}, this reader knows ${REGION_MAJOR_VERSION}.x`,
    );
  const deviceCount = Number(header.readBigUInt64LE(AT.deviceCount));
  if (deviceCount > MAX_DEVICES)
    throw new SharedRegionError(file, 'corrupt', `device_num ${deviceCount} is over ${MAX_DEVICES}`);
  const processCount = tail.readInt32LE(0);
  if (processCount < 0 || processCount > MAX_PROCESSES)
    throw new SharedRegionError(file, 'corrupt', `proc_num ${processCount} is outside 0..${MAX_PROCESSES}`);
  const devices = regionDevices(header, deviceCount);
  return {
    region: {
      version,
      devices,
      priority: tail.readInt32LE(AT.priority - AT.processCount),
      lastKernelTimeSeconds: Number(tail.readBigUInt64LE(AT.lastKernelTime - AT.processCount)),
    },
    processCount,
    devices,
  };
}

/**
 * The devices HAMi-core knows: `device_num` once its NVML hook ran; before that, the indices with a
 * memory limit (set from the environment when the region was created).
 */
function regionDevices(header: Buffer, deviceCount: number): RegionDevice[] {
  const limitAt = (i: number) => Number(header.readBigUInt64LE(AT.memoryLimits + 8 * i));
  let count = deviceCount;
  if (count === 0) for (let i = 0; i < MAX_DEVICES; i++) if (limitAt(i) > 0) count = i + 1;
  return Array.from({ length: count }, (_, index) => ({
    index,
    uuid: cString(header, AT.uuids + UUID_BYTES * index, UUID_BYTES),
    memoryLimitBytes: limitAt(index),
    smLimitPercent: Number(header.readBigUInt64LE(AT.smLimits + 8 * index)),
  }));
}

/** A NUL-terminated ASCII field; undefined when empty or not text. */
function cString(buffer: Buffer, at: number, length: number): string | undefined {
  const field = buffer.subarray(at, at + length);
  const end = field.indexOf(0);
  const text = field.subarray(0, end === -1 ? length : end).toString('latin1');
  return text !== '' && /^[\x21-\x7e]+$/.test(text) ? text : undefined;
}

/** The first `count` slots, in one read; a slot caught mid-update (odd seqlock) is read again. */
async function readProcesses(
  handle: Awaited<ReturnType<typeof open>>,
  count: number,
  deviceCount: number,
): Promise<RegionProcess[]> {
  if (count === 0) return [];
  const slots = await readAt(handle, count * SLOT.bytes, AT.slots);
  const processes: RegionProcess[] = [];
  for (let i = 0; i * SLOT.bytes + SLOT.bytes <= slots.length; i++) {
    let slot = slots.subarray(i * SLOT.bytes, (i + 1) * SLOT.bytes);
    for (let retry = 0; retry < SEQLOCK_RETRIES && midUpdate(slot); retry++)
      slot = await readAt(handle, SLOT.bytes, AT.slots + i * SLOT.bytes);
    if (midUpdate(slot)) continue;
    const process = parseSlot(slot, deviceCount);
    if (process) processes.push(process);
  }
  return processes;
}

function midUpdate(slot: Buffer): boolean {
  return (slot.readBigUInt64LE(SLOT.seqlock) & 1n) === 1n;
}

/** A slot in use, or undefined for a free one (HAMi-core zeroes pid and status when a process exits). */
export function parseSlot(slot: Buffer, deviceCount: number): RegionProcess | undefined {
  const pid = slot.readInt32LE(SLOT.pid);
  const status = slot.readInt32LE(SLOT.status);
  if (pid === 0 || status === 0) return undefined;
  const u64 = (at: number) => Number(slot.readBigUInt64LE(at));
  const devices = Array.from({ length: deviceCount }, (_, d): RegionProcessDevice => {
    const used = SLOT.used + SLOT.usedStride * d;
    return {
      contextBytes: u64(used),
      moduleBytes: u64(used + 8),
      dataBytes: u64(used + 16),
      totalBytes: u64(used + 32),
      monitorUsedBytes: u64(SLOT.monitorUsed + 8 * d),
      smUtilPercent: u64(SLOT.util + SLOT.utilStride * d + 16),
    };
  });
  return { pid, hostPid: slot.readInt32LE(SLOT.hostPid), status, devices };
}
