/**
 * The state-file conversion must agree with what the real koffi binding reads from the mock library on
 * the same state: compared field by field on the ready nodes and on edge cases (defaults, lost GPUs).
 */
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { buildInventory } from '../../src/devices/inventory.js';
import { mockNodePath } from '../../src/paths.js';
import { readMigMinors } from '../../src/runtime/host.js';
import type { MockMigDevice, MockNvmlState } from '../../src/sim/mock-node.js';
import { inventoryFromMockState } from '../../src/sim/state-inventory.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';

let opened: OpenedMock | undefined;
afterEach(async () => {
  await opened?.close();
  opened = undefined;
});

async function throughBinding(state: MockNvmlState) {
  opened = await openMockNvml(state);
  const inventory = await buildInventory(opened.nvml, opened.node.hostPaths);
  const migMinors = await readMigMinors(opened.node.hostPaths.procRoot);
  return { inventory, migMinors };
}

describe('inventoryFromMockState', () => {
  it.each(['dgx-a100', 'mixed-mig', 'single-t4'])('matches the binding on the %s node', async (node) => {
    const state = JSON.parse(await readFile(mockNodePath(node), 'utf8')) as MockNvmlState;
    const { inventory, migMinors } = await throughBinding(state);
    expect(inventoryFromMockState(state, node, { migMinors })).toEqual({ ok: true, value: inventory });
  });

  it('matches the binding with defaults, a lost GPU and MIG profiles computed from attributes', async () => {
    const state = twoGpuState();
    state.devices.push(
      {
        // MockDevice requires these four; everything else is left to the mock's defaults.
        uuid: 'GPU-33333333-3333-3333-3333-333333333333',
        name: 'NVIDIA Mock GPU',
        minor: 5,
        pciBusId: '0000:4e:00.0',
        memoryTotalMiB: 16384,
      },
      {
        uuid: 'GPU-44444444-4444-4444-4444-444444444444',
        name: 'NVIDIA H100 80GB HBM3',
        minor: 2,
        pciBusId: '00000000:87:00.0',
        memoryTotalMiB: 81559,
        computeCapability: [9, 0],
        migEnabled: true,
        numaNode: 1,
        nvlinkPeers: [0, 1, 1], // the links to GPU 1 are left out: it is lost
        migDevices: [
          { uuid: 'MIG-a', giId: 3, ciId: 0, profile: '1c.2g.20gb', memoryMiB: 19968, multiprocessors: 16 },
          // Every optional field left to the mock's defaults.
          { uuid: 'MIG-b', profile: '1g.10gb+me' } as MockMigDevice,
        ],
      },
    );
    state.devices[0]!.nvlinkPeers = [1, 1, 3]; // NVLink is symmetric: both ends list each link
    state.devices[1]!.nvlinkPeers = [0, 0, 3, 3];
    state.devices[1]!.lost = true;
    const { inventory, migMinors } = await throughBinding(state);
    expect(inventory.problems).toHaveLength(1);
    expect(inventoryFromMockState(state, 'state.json', { migMinors })).toEqual({
      ok: true,
      value: inventory,
    });
  });

  it("applies the mock's defaults to a bare device", () => {
    const result = inventoryFromMockState({ devices: [{ uuid: 'GPU-0' }, { uuid: 'GPU-1' }] }, 'x.json');
    expect(result).toEqual({
      ok: true,
      value: {
        driverVersion: '580.95.05',
        cudaDriverVersion: '13.0',
        problems: [],
        gpus: [0, 1].map((index) => ({
          uuid: `GPU-${index}`,
          index,
          name: 'NVIDIA Mock GPU',
          minor: index,
          memoryMiB: 16384,
          busId: `0000:0${index + 1}:00.0`,
          numaNode: null,
          computeCapability: { major: 8, minor: 0 },
          deviceNodes: [`/dev/nvidia${index}`],
          migCapable: false,
          migEnabled: false,
          migDevices: [],
          links: [{ peerUuid: `GPU-${1 - index}`, nvlinks: 0, pcieLevel: 50 }],
        })),
      },
    });
  });

  it('lists MIG devices with only the parent node when no mig-minors are given', () => {
    const result = inventoryFromMockState(
      {
        devices: [
          {
            uuid: 'GPU-1',
            name: 'NVIDIA A100-SXM4-40GB',
            memoryTotalMiB: 40960,
            migEnabled: true,
            migDevices: [{ uuid: 'MIG-1', profile: '3g.20gb', memoryMiB: 19968 }],
          },
        ],
      },
      'x.json',
    );
    expect(result.ok && result.value.gpus[0]?.migDevices[0]).toMatchObject({
      profile: '3g.20gb',
      deviceNodes: ['/dev/nvidia0'],
      index: '0:0',
    });
  });

  it.each([
    [
      { devices: [{ name: 'x' }] },
      ['s.json: devices[0].uuid: Invalid input: expected string, received undefined'],
    ],
    [
      { devices: [{ uuid: 'GPU-1', memoryTotalMiB: '80GB' }] },
      ['s.json: devices[0].memoryTotalMiB: Invalid input: expected number, received string'],
    ],
    [
      { devices: [{ uuid: 'GPU-1', migEnabled: true, migDevices: [{ uuid: 'MIG-1', profile: 'big' }] }] },
      ['s.json: devices[0].migDevices[0].profile: expected "<G>g.<N>gb" or "<C>c.<G>g.<N>gb"'],
    ],
    [
      { devices: [{ uuid: 'GPU-1', nvlinkPeers: [3] }, { uuid: 'GPU-1' }] },
      [
        's.json: devices[0].nvlinkPeers[0]: no device at index 3',
        's.json: devices[1].uuid: duplicate UUID GPU-1',
      ],
    ],
    [
      {
        devices: [
          {
            uuid: 'GPU-1',
            migEnabled: true,
            migDevices: [
              { uuid: 'MIG-1', giId: 2, profile: '1g.10gb' },
              { uuid: 'MIG-2', profile: '1g.10gb' },
            ],
          },
        ],
      },
      ['s.json: devices[0].migDevices[1]: giId 2 / ciId 0 is already used by migDevices[0]'],
    ],
    [
      {
        devices: [
          { uuid: 'GPU-0', nvlinkPeers: [1, 1] },
          { uuid: 'GPU-1', nvlinkPeers: [0] },
        ],
      },
      [
        's.json: devices[0].nvlinkPeers: 2 link(s) to device 1, but devices[1].nvlinkPeers has 1 link(s) ' +
          'to device 0: NVLink is symmetric, list every link on both GPUs',
      ],
    ],
    [
      {
        devices: [
          {
            uuid: 'GPU-1',
            migEnabled: true,
            migDevices: [
              { uuid: 'MIG-1', giId: 1, ciId: 0, profile: '1c.3g.20gb' },
              { uuid: 'MIG-2', giId: 1, ciId: 1, profile: '1c.2g.20gb' },
              { uuid: 'MIG-3', giId: 2, ciId: 0, profile: '2c.3g.20gb' },
              { uuid: 'MIG-4', giId: 2, ciId: 1, profile: '2c.3g.20gb' },
            ],
          },
        ],
      },
      [
        's.json: devices[0].migDevices[1]: giId 1 is the GPU instance of migDevices[0] (1c.3g.20gb, 20480 MiB) ' +
          'but this one is 1c.2g.20gb, 20480 MiB',
        's.json: devices[0].migDevices[3]: the compute instances of GPU instance 2 need 4 compute slices; it has 3',
      ],
    ],
    [[], ['s.json: (document): Invalid input: expected object, received array']],
  ])('refuses a malformed state %#', (json, errors) => {
    expect(inventoryFromMockState(json, 's.json')).toEqual({ ok: false, error: errors });
  });
});
