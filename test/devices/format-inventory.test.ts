/** The inventory as `vgpu-agent inventory` and the demo print it: one line per GPU and MIG device. */
import { describe, expect, it } from 'vitest';
import { formatInventory } from '../../src/devices/format-inventory.js';
import type { Inventory } from '../../src/devices/inventory-types.js';
import { linkedInventory, mig, uuidOf } from '../helpers/inventory.js';

describe('formatInventory', () => {
  it('prints the driver, each GPU with its facts, its MIG devices, and the problems met', () => {
    // GPUs 0 and 1 are NVLinked; neither has NVLink to GPU 2, whose links to both are PCIe only.
    const linked = linkedInventory(3, (a, b) => (a + b === 1 ? 4 : 0)).gpus;
    const g0 = { ...linked[0]!, migEnabled: true };
    g0.migDevices = [mig(g0, 0, '3g.40gb', 40192)];
    const g1 = { ...linked[1]!, migCapable: false, numaNode: null, computeCapability: null };
    const g2 = { ...linked[2]!, deviceNodes: ['/dev/nvidia2', '/dev/nvidia-caps'] };
    const inventory: Inventory = {
      driverVersion: '580.95.05',
      cudaDriverVersion: null,
      gpus: [g0, g1, g2],
      problems: [{ where: `${uuidOf(3)}`, message: 'GPU is lost' }],
    };
    expect(formatInventory(inventory).split('\n')).toEqual([
      'driver 580.95.05, CUDA n/a, 3 GPU(s)',
      `  GPU 0  ${uuidOf(0)}  NVIDIA A100-SXM4-80GB  81920 MiB  cc 8.0  pci 0000:07:00.0  numa 0  /dev/nvidia0  nvlink to 1 GPU(s)  MIG on`,
      `    MIG 0:0  ${g0.migDevices[0]!.uuid}  3g.40gb  40192 MiB  14 SMs  gi 1 ci 0`,
      `  GPU 1  ${uuidOf(1)}  NVIDIA A100-SXM4-80GB  81920 MiB  cc ?  pci 0000:08:00.0  numa -  /dev/nvidia1  nvlink to 1 GPU(s)`,
      `  GPU 2  ${uuidOf(2)}  NVIDIA A100-SXM4-80GB  81920 MiB  cc 8.0  pci 0000:09:00.0  numa 0  /dev/nvidia2,/dev/nvidia-caps  MIG off`,
      `  ! ${uuidOf(3)}: GPU is lost`,
    ]);
    expect(formatInventory({ ...inventory, cudaDriverVersion: '13.0', gpus: [], problems: [] })).toBe(
      'driver 580.95.05, CUDA 13.0, 0 GPU(s)',
    );
  });
});
