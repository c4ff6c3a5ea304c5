/**
 * kubelet's allocations read through the split directories (pure): a container joined to its
 * directory answers with the GPUs the directory binds its device IDs to (HAMi mode's replica IDs name
 * no GPU); other containers, and sources without a list of IDs, answer as before.
 */
import { describe, expect, it } from 'vitest';
import type { AllocationSource, ContainerAllocation } from '../../src/monitor/containers.js';
import type { SplitUsage } from '../../src/monitor/snapshot.js';
import { withSplitDeviceIds } from '../../src/monitor/split-allocations.js';

const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const HAMI = { namespace: 'ml', pod: 'train-0', container: 'main' };
const OTHER = { namespace: 'web', pod: 'serve-1', container: 'api' };
const RESOURCE = 'nvidia.com/gpu';

/** What PodResources said: HAMi's container got two replicas named after GPU 0; the other GPU 0 whole. */
const listed: ContainerAllocation[] = [
  { names: HAMI, resourceName: RESOURCE, deviceId: `${GPU0}-0`, uuid: GPU0 },
  { names: HAMI, resourceName: RESOURCE, deviceId: `${GPU0}-1`, uuid: GPU0 },
  { names: OTHER, resourceName: RESOURCE, deviceId: GPU0, uuid: GPU0 },
];
const source: AllocationSource = {
  devicesOf: (c) => new Set(listed.filter((a) => a.names.pod === c.pod).map((a) => a.uuid)),
  allocations: () => listed,
};

/** The directory binds the first replica to GPU 1 and the second to GPU 0 (the scheduler's order). */
function split(uuid: string, gpuIndex: number, deviceIds: string[]): SplitUsage {
  return {
    device: { uuid, gpuUuid: uuid, gpuIndex },
    names: HAMI,
    allocation: 'd',
    deviceIds,
    deviceIndex: 0,
  };
}
const splits = [split(GPU1, 1, [`${GPU0}-0`]), split(GPU0, 0, [`${GPU0}-1`])];

describe('withSplitDeviceIds', () => {
  it("maps a joined container's device IDs to the directory's GPUs, and leaves the others as listed", () => {
    const bound = withSplitDeviceIds(source, splits);
    expect(bound.devicesOf(HAMI)).toEqual(new Set([GPU1, GPU0]));
    expect(bound.devicesOf(OTHER)).toEqual(new Set([GPU0]));
    expect(bound.allocations!().map((a) => [a.names.pod, a.deviceId, a.uuid])).toEqual([
      ['train-0', `${GPU0}-0`, GPU1],
      ['train-0', `${GPU0}-1`, GPU0],
      ['serve-1', GPU0, GPU0],
    ]);
  });

  it('is the source itself without splits, or when the source lists no device IDs', () => {
    expect(withSplitDeviceIds(source, undefined)).toBe(source);
    expect(withSplitDeviceIds(source, [])).toBe(source);
    const namesOnly: AllocationSource = { devicesOf: () => undefined };
    expect(withSplitDeviceIds(namesOnly, splits)).toBe(namesOnly);
  });
});
