/**
 * A simulated GPU node: a private copy of a mock NVML state file that a test or the demo edits while
 * the agent runs (the mock library re-reads it on change). Writes are atomic (tmp + rename), as a
 * real driver's state never appears half-written.
 */
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { toSysfsBusId } from '../nvml/pci.js';
import { mockNodePath, mockNvmlLibraryPath } from '../paths.js';
import type { HostPaths } from '../runtime/host.js';

export interface MockProcess {
  pid: number;
  usedMemoryMiB: number;
  smUtil?: number;
  memUtil?: number;
}

export interface MockMigDevice {
  uuid: string;
  giId: number;
  ciId: number;
  profile: string;
  memoryMiB: number;
  multiprocessors: number;
  processes?: MockProcess[];
  /** injected return codes for calls on this MIG device only (native/mock-nvml/README.md, Failures) */
  failures?: Record<string, string | number>;
}

/** One GPU of the mock's state file; optional fields have the defaults native/mock-nvml/README.md gives. */
export interface MockDevice {
  uuid: string;
  name?: string;
  minor?: number;
  pciBusId?: string;
  pciDeviceId?: string;
  pciSubSystemId?: string;
  memoryTotalMiB?: number;
  migCapable?: boolean;
  migPending?: boolean;
  gpuNumaNodeId?: number;
  computeCapability?: [number, number];
  utilization?: { gpu: number; memory: number };
  temperatureC?: number;
  powerMw?: number;
  numaNode?: number;
  pcieSwitch?: number;
  nvlinkPeers?: number[];
  migEnabled?: boolean;
  migDevices?: MockMigDevice[];
  processes?: MockProcess[];
  supportedEvents?: string[];
  failures?: Record<string, string | number>;
  lost?: boolean;
}

export interface MockEvent {
  seq: number;
  uuid: string;
  xid?: number;
  type?: 'xid' | 'dbe' | 'sbe';
  giId?: number;
  ciId?: number;
}

export interface MockNvmlState {
  driverVersion: string;
  cudaDriverVersion?: number;
  nvmlVersion?: string;
  failures?: Record<string, string | number>;
  devices: MockDevice[];
  events?: MockEvent[];
}

export class MockNode {
  private writes = 0;

  private constructor(
    readonly dir: string,
    readonly statePath: string,
    private current: MockNvmlState,
  ) {}

  /** Copies a ready node (`dgx-a100`, `mixed-mig`, `single-t4`) or takes a state object. */
  static async create(from: string | MockNvmlState, dir?: string): Promise<MockNode> {
    const state: MockNvmlState =
      typeof from === 'string'
        ? JSON.parse(await readFile(mockNodePath(from), 'utf8'))
        : structuredClone(from);
    const home = dir ?? (await mkdtemp(path.join(os.tmpdir(), 'vgpu-mock-node-')));
    const node = new MockNode(home, path.join(home, 'nvml-state.json'), state);
    await node.write();
    return node;
  }

  /** Path of the mock libnvidia-ml to give the agent (`--nvml-library`). */
  get libraryPath(): string {
    return mockNvmlLibraryPath();
  }

  /**
   * A fake host /sys and /proc for this node: each GPU's NUMA node (from the state) and PCI class, the
   * machine type, and the driver's MIG capability minors table, as the inventory, the GPU feature
   * labels (and NVIDIA's plugin and GFD) read them on a real host.
   */
  get hostPaths(): HostPaths {
    return { sysfsRoot: path.join(this.dir, 'sys'), procRoot: path.join(this.dir, 'proc') };
  }

  get state(): MockNvmlState {
    return structuredClone(this.current);
  }

  /** The mock reads MOCK_NVML_STATE at nvmlInit; call before opening NVML in this process. */
  exportEnv(env: NodeJS.ProcessEnv = process.env): void {
    env.MOCK_NVML_STATE = this.statePath;
  }

  async update(change: (state: MockNvmlState) => void): Promise<void> {
    change(this.current);
    await this.write();
  }

  /** Queues an Xid (or ECC) event for one GPU; the mock delivers it once to each registered event set. */
  async injectEvent(event: Omit<MockEvent, 'seq'>): Promise<void> {
    await this.update((state) => {
      state.events ??= [];
      const events = state.events;
      const seq = events.reduce((max, e) => Math.max(max, e.seq), 0) + 1;
      events.push({ seq, ...event });
    });
  }

  async setLost(uuid: string, lost: boolean): Promise<void> {
    await this.update((state) => {
      const device = state.devices.find((d) => d.uuid === uuid);
      if (!device) throw new Error(`mock node has no GPU ${uuid}`);
      device.lost = lost;
    });
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  private async writeHostFiles(): Promise<void> {
    const { sysfsRoot, procRoot } = this.hostPaths;
    for (const device of this.current.devices) {
      if (!device.pciBusId) continue; // the mock makes one up; the inventory then finds no NUMA node
      const dir = path.join(sysfsRoot, 'bus/pci/devices', toSysfsBusId(device.pciBusId));
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'numa_node'), `${device.numaNode ?? -1}\n`);
      // a data-center GPU: PCI class 3D controller (GPU feature label gpu.mode=compute)
      await writeFile(path.join(dir, 'class'), '0x030200\n');
    }
    if (this.writes > 0) return; // mig-minors and the machine type do not depend on the state: written once
    await mkdir(path.join(sysfsRoot, 'class/dmi/id'), { recursive: true });
    await writeFile(path.join(sysfsRoot, 'class/dmi/id/product_name'), `${MOCK_MACHINE_TYPE}\n`);
    await mkdir(path.join(procRoot, 'driver/nvidia-caps'), { recursive: true });
    await writeFile(path.join(procRoot, 'driver/nvidia-caps/mig-minors'), migMinorsTable());
  }

  private async write(): Promise<void> {
    await this.writeHostFiles();
    const tmp = `${this.statePath}.${process.pid}.${++this.writes}.tmp`;
    await writeFile(tmp, `${JSON.stringify(this.current, null, 2)}\n`);
    await rename(tmp, this.statePath);
  }
}

/** The DMI product name of every mock node (GPU feature label gpu.machine). */
export const MOCK_MACHINE_TYPE = 'vgpu-agent mock node';

/**
 * `/proc/driver/nvidia-caps/mig-minors` as the NVIDIA driver writes it, whatever GPUs are present:
 * `config 1`, `monitor 2`, then for each GPU minor 0-31 and GPU instance 0-14 its access minor followed
 * by those of compute instances 0-7, numbered on (up to `gpu31/gi14/ci7/access 4322`).
 */
function migMinorsTable(): string {
  const lines = ['config 1', 'monitor 2'];
  let minor = 3;
  for (let gpu = 0; gpu < 32; gpu++) {
    for (let gi = 0; gi < 15; gi++) {
      lines.push(`gpu${gpu}/gi${gi}/access ${minor++}`);
      for (let ci = 0; ci < 8; ci++) lines.push(`gpu${gpu}/gi${gi}/ci${ci}/access ${minor++}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
