/**
 * Which GPUs and MIG devices are unhealthy, why, and since when. Pure: the clock and the NVML probe
 * are passed in. A device derived from an unhealthy GPU (replica, slice, MIG device) is unhealthy too;
 * NVIDIA flags only one of them (their issue #1929).
 */
import type { DeviceTarget } from './resource-types.js';

export interface UnhealthyRecord {
  /** GPU-… or MIG-… */
  uuid: string;
  reason: string;
  xid?: number;
  sinceMs: number;
}

export class HealthState {
  private readonly unhealthy = new Map<string, UnhealthyRecord>();

  /** @returns true when this changed the state (the device was healthy) */
  markUnhealthy(uuid: string, reason: string, nowMs: number, xid?: number): boolean {
    if (this.unhealthy.has(uuid)) return false;
    this.unhealthy.set(uuid, { uuid, reason, sinceMs: nowMs, ...(xid !== undefined ? { xid } : {}) });
    return true;
  }

  /** Forgets every mark; true when there was one. */
  clear(): boolean {
    const had = this.unhealthy.size > 0;
    this.unhealthy.clear();
    return had;
  }

  isHealthy(target: Pick<DeviceTarget, 'uuid' | 'gpuUuid'>): boolean {
    return !this.unhealthy.has(target.uuid) && !this.unhealthy.has(target.gpuUuid);
  }

  records(): UnhealthyRecord[] {
    return [...this.unhealthy.values()];
  }

  /**
   * Brings back devices unhealthy for at least `recoverAfterMs` that `answers(uuid)` says work again.
   * `recoverAfterMs` 0 means never (NVIDIA's behaviour). Returns the recovered records.
   */
  recover(nowMs: number, recoverAfterMs: number, answers: (uuid: string) => boolean): UnhealthyRecord[] {
    if (recoverAfterMs <= 0) return [];
    const recovered: UnhealthyRecord[] = [];
    for (const record of this.unhealthy.values()) {
      if (nowMs - record.sinceMs >= recoverAfterMs && answers(record.uuid)) {
        this.unhealthy.delete(record.uuid);
        recovered.push(record);
      }
    }
    return recovered;
  }
}
