/**
 * The ListAndWatch size computed from counts and ID lengths, checked against what protobuf really
 * encodes for kubelet, and the per-GPU bound of the config schema against kubelet's limit.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SHARES_PER_GPU } from '../../src/config/sharing-schema.js';
import {
  DEVICE_LIST_LIMIT_BYTES,
  deviceEntryBytes,
  KUBELET_MAX_MESSAGE_BYTES,
  targetListBytes,
} from '../../src/devices/device-list-size.js';
import { gpuTarget, migTarget } from '../../src/devices/mig-strategy.js';
import type { DeviceTarget } from '../../src/devices/resource-types.js';
import { shareId } from '../../src/devices/resources.js';
import { type Device, devicePluginService, HEALTHY, UNHEALTHY } from '../../src/kubelet-api/proto.js';
import { gpu, mig } from '../helpers/inventory.js';

/** The bytes grpc-js puts on the wire for this ListAndWatch response (the message, without framing). */
const encodedBytes = (devices: Device[]) =>
  devicePluginService.ListAndWatch.responseSerialize({ devices }).length;

function listOf(target: DeviceTarget, shares: number | null, health: string): Device[] {
  const ids =
    shares === null ? [target.uuid] : Array.from({ length: shares }, (_, n) => shareId(target.uuid, n));
  const topology = target.numaNode === null ? null : { nodes: [{ ID: target.numaNode }] };
  return ids.map((ID) => ({ ID, health, topology }));
}

const legacyMig = {
  ...migTarget(mig(gpu(3), 1, '1g.10gb', 9856)),
  uuid: `MIG-GPU-${'a'.repeat(36)}/13/0`,
  numaNode: null,
};

describe('device list size', () => {
  it.each([
    ['a GPU on NUMA node 0', gpuTarget(gpu(0)), null],
    ['a GPU on NUMA node 1', gpuTarget(gpu(5)), 1],
    ['a GPU with no NUMA node', gpuTarget(gpu(0, { numaNode: null })), 10],
    ['a GPU on NUMA node 200 (a 2-byte varint)', gpuTarget(gpu(0, { numaNode: 200 })), 11],
    ['a MIG device with a legacy UUID', legacyMig, 101],
    ['10,001 shares (1 to 5 digits)', gpuTarget(gpu(1)), 10_001],
  ])('%s: exact when every device is Unhealthy, an upper bound otherwise', (_what, target, shares) => {
    const computed = targetListBytes(target, shares);
    expect(computed).toBe(encodedBytes(listOf(target, shares, UNHEALTHY)));
    expect(computed).toBeGreaterThan(encodedBytes(listOf(target, shares, HEALTHY)));
  });

  it('keeps an eighth of kubelet’s 4 MiB limit spare', () => {
    expect(KUBELET_MAX_MESSAGE_BYTES).toBe(4 * 1024 * 1024);
    expect(DEVICE_LIST_LIMIT_BYTES).toBe(3.5 * 1024 * 1024);
  });

  it('the schema’s per-GPU bound fits one GPU even at the longest device ID the API allows', () => {
    // 63 characters, the most a Device.ID may have; a NUMA node as long as an int64 can be.
    expect(deviceEntryBytes(63, -1)).toBe(93);
    expect(MAX_SHARES_PER_GPU * deviceEntryBytes(63, -1)).toBeLessThanOrEqual(DEVICE_LIST_LIMIT_BYTES);
  });
});
