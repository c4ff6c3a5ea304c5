import { describe, expect, it } from 'vitest';
import { gpuTarget, migTarget } from '../../src/devices/mig-strategy.js';
import type { AdvertisedDevice } from '../../src/devices/resource-types.js';
import { type AllocateSettings, containerAllocateResponse } from '../../src/plugin/allocate-response.js';
import { gpu, mig, uuidOf } from '../helpers/inventory.js';

const settings = (overrides: Partial<AllocateSettings> = {}): AllocateSettings => ({
  deviceListStrategies: ['envvar'],
  deviceIdStrategy: 'uuid',
  passDeviceSpecs: false,
  devRoot: '/',
  controlDeviceNodes: ['/dev/nvidiactl', '/dev/nvidia-uvm'],
  cdiAnnotationPrefix: 'cdi.k8s.io/',
  cdiKind: 'nvidia.com/gpu',
  extraEnvs: {},
  ...overrides,
});

const g0 = gpu(0);
const g3 = gpu(3);
const whole = [g0, g3].map((g): AdvertisedDevice => ({ id: g.uuid, target: gpuTarget(g) }));
const replicasOfOneGpu = [0, 1].map(
  (n): AdvertisedDevice => ({ id: `${g3.uuid}::${n}`, target: gpuTarget(g3), share: n }),
);

describe('containerAllocateResponse', () => {
  it('envvar + uuid: NVIDIA_VISIBLE_DEVICES lists the GPUs', () => {
    expect(containerAllocateResponse(whole, settings())).toEqual({
      envs: { NVIDIA_VISIBLE_DEVICES: `${uuidOf(0)},${uuidOf(3)}` },
      mounts: [],
      devices: [],
      annotations: {},
      cdi_devices: [],
    });
  });

  it('index strategy uses NVIDIA indexes (i, and i:j for MIG)', () => {
    const m = mig(gpu(1, { migEnabled: true }), 2, '1g.10gb', 9856);
    const devices = [whole[1]!, { id: m.uuid, target: migTarget(m) }];
    expect(containerAllocateResponse(devices, settings({ deviceIdStrategy: 'index' })).envs).toEqual({
      NVIDIA_VISIBLE_DEVICES: '3,1:2',
    });
  });

  it('replicas of one GPU map to that GPU once (no duplicates)', () => {
    expect(containerAllocateResponse(replicasOfOneGpu, settings()).envs).toEqual({
      NVIDIA_VISIBLE_DEVICES: uuidOf(3),
    });
  });

  it('volume-mounts: the env points at the devices dir, one /dev/null mount per device', () => {
    const response = containerAllocateResponse(whole, settings({ deviceListStrategies: ['volume-mounts'] }));
    expect(response.envs).toEqual({ NVIDIA_VISIBLE_DEVICES: '/var/run/nvidia-container-devices' });
    expect(response.mounts).toEqual([
      { container_path: `/var/run/nvidia-container-devices/${uuidOf(0)}`, host_path: '/dev/null' },
      { container_path: `/var/run/nvidia-container-devices/${uuidOf(3)}`, host_path: '/dev/null' },
    ]);
  });

  it('cdi-cri: CDI device names and no NVIDIA runtime env', () => {
    const response = containerAllocateResponse(whole, settings({ deviceListStrategies: ['cdi-cri'] }));
    expect(response.cdi_devices).toEqual([
      { name: `nvidia.com/gpu=${uuidOf(0)}` },
      { name: `nvidia.com/gpu=${uuidOf(3)}` },
    ]);
    expect(response.envs).toEqual({});
  });

  it('cdi-annotations: one annotation naming every device', () => {
    const response = containerAllocateResponse(
      whole,
      settings({ deviceListStrategies: ['cdi-annotations'], cdiKind: 'k8s.device-plugin.nvidia.com/gpu' }),
    );
    expect(response.annotations).toEqual({
      [`cdi.k8s.io/vgpu-agent_${uuidOf(0)}`]: `k8s.device-plugin.nvidia.com/gpu=${uuidOf(0)},k8s.device-plugin.nvidia.com/gpu=${uuidOf(3)}`,
    });
  });

  it('combined strategies add up (envvar + cdi-cri)', () => {
    const response = containerAllocateResponse(
      whole,
      settings({ deviceListStrategies: ['envvar', 'cdi-cri'] }),
    );
    expect(response.envs!.NVIDIA_VISIBLE_DEVICES).toBe(`${uuidOf(0)},${uuidOf(3)}`);
    expect(response.cdi_devices).toHaveLength(2);
  });

  it('extra NVIDIA_* variables go with the NVIDIA runtime env, never with CDI alone', () => {
    const extraEnvs = { NVIDIA_GDRCOPY: 'enabled' };
    for (const cdiOnly of [['cdi-cri'], ['cdi-annotations'], ['cdi-annotations', 'cdi-cri']] as const) {
      expect(
        containerAllocateResponse(whole, settings({ deviceListStrategies: cdiOnly, extraEnvs })).envs,
      ).toEqual({});
    }
    expect(
      containerAllocateResponse(
        whole,
        settings({ deviceListStrategies: ['cdi-annotations', 'envvar'], extraEnvs }),
      ).envs,
    ).toEqual({ NVIDIA_VISIBLE_DEVICES: `${uuidOf(0)},${uuidOf(3)}`, NVIDIA_GDRCOPY: 'enabled' });
    expect(
      containerAllocateResponse(whole, settings({ deviceListStrategies: ['volume-mounts'], extraEnvs })).envs,
    ).toEqual({ NVIDIA_VISIBLE_DEVICES: '/var/run/nvidia-container-devices', NVIDIA_GDRCOPY: 'enabled' });
  });

  it('passDeviceSpecs: control nodes present plus each GPU node, under the dev root', () => {
    const response = containerAllocateResponse(
      whole,
      settings({ passDeviceSpecs: true, devRoot: '/run/nvidia/driver' }),
    );
    expect(response.devices).toEqual(
      ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia0', '/dev/nvidia3'].map((p) => ({
        container_path: p,
        host_path: `/run/nvidia/driver${p}`,
        permissions: 'rw',
      })),
    );
  });
});
