/**
 * Writes HAMi-core shared-region files the way libvgpu lays them out, for the monitor's tests. The
 * offsets are written out here on purpose, from gcc's offsetof() on HAMi-core's
 * multiprocess_memory_limit.h (version 1.2, x86-64), not imported from the reader: a wrong offset in
 * the reader then fails a test instead of agreeing with itself.
 */
import { writeFile } from 'node:fs/promises';

export interface RegionProcessSpec {
  pid: number;
  hostPid?: number;
  /** 1 running (default), 2 suspended, 0 exited */
  status?: number;
  /** odd: a write in progress */
  seqlock?: number;
  /** per device index */
  devices: {
    context?: number;
    module?: number;
    data?: number;
    total: number;
    monitorUsed?: number;
    smUtil?: number;
  }[];
}

export interface RegionSpec {
  magic?: number;
  major?: number;
  minor?: number;
  /** device_num; defaults to uuids.length */
  deviceCount?: number;
  uuids?: string[];
  memoryLimits?: number[];
  smLimits?: number[];
  processes?: RegionProcessSpec[];
  /** proc_num; defaults to processes.length */
  processCount?: number;
  priority?: number;
  lastKernelTime?: number;
}

export const REGION_SIZE = 2008952;
const SLOT_SIZE = 1960;

/** The region's bytes, plus the one byte HAMi-core writes past the end when it creates the file. */
export function encodeRegion(spec: RegionSpec): Buffer {
  const b = Buffer.alloc(REGION_SIZE + 1);
  b.writeInt32LE(spec.magic ?? 19920718, 0);
  b.writeUInt32LE(spec.major ?? 1, 4);
  b.writeUInt32LE(spec.minor ?? 2, 8);
  b.writeBigUInt64LE(BigInt(spec.deviceCount ?? spec.uuids?.length ?? 0), 56);
  (spec.uuids ?? []).forEach((uuid, i) => {
    b.write(uuid, 64 + 96 * i, 'latin1');
  });
  for (let i = 0; i < 16; i++) {
    b.writeBigUInt64LE(BigInt(spec.memoryLimits?.[i] ?? 0), 1600 + 8 * i);
    b.writeBigUInt64LE(BigInt(spec.smLimits?.[i] ?? 100), 1728 + 8 * i);
  }
  (spec.processes ?? []).forEach((p, i) => {
    writeSlot(b, 1856 + SLOT_SIZE * i, p);
  });
  b.writeInt32LE(spec.processCount ?? spec.processes?.length ?? 0, 2008896);
  b.writeInt32LE(1, 2008900); // utilization_switch
  b.writeInt32LE(2, 2008904); // recent_kernel
  b.writeInt32LE(spec.priority ?? 1, 2008908);
  b.writeBigUInt64LE(BigInt(spec.lastKernelTime ?? 0), 2008912);
  return b;
}

function writeSlot(b: Buffer, at: number, p: RegionProcessSpec): void {
  b.writeInt32LE(p.pid, at);
  b.writeInt32LE(p.hostPid ?? p.pid, at + 4);
  p.devices.forEach((d, i) => {
    const used = at + 8 + 64 * i;
    b.writeBigUInt64LE(BigInt(d.context ?? 0), used);
    b.writeBigUInt64LE(BigInt(d.module ?? 0), used + 8);
    b.writeBigUInt64LE(BigInt(d.data ?? d.total), used + 16);
    b.writeBigUInt64LE(BigInt(d.total), used + 32);
    b.writeBigUInt64LE(BigInt(d.monitorUsed ?? 0), at + 1032 + 8 * i);
    b.writeBigUInt64LE(BigInt(d.smUtil ?? 0), at + 1160 + 48 * i + 16);
  });
  b.writeInt32LE(p.status ?? 1, at + 1928);
  b.writeBigUInt64LE(BigInt(p.seqlock ?? 0), at + 1936);
}

export async function writeRegionFile(file: string, spec: RegionSpec): Promise<void> {
  await writeFile(file, encodeRegion(spec));
}
