/**
 * A mock NVML state file (native/mock-nvml/README.md) → the Inventory that `buildInventory` would read
 * through the mock library, without loading it. `config check` uses it to show what a node would
 * advertise, in CI, with no GPU and no native build. Pure; the same defaults and the same rules as the
 * mock and the inventory builder: index = position, `/dev/nvidia<minor>`, MIG devices only while MIG is
 * enabled, profile names from the MIG attributes (`migProfileName`), NVLink counts from `nvlinkPeers`,
 * PCIe levels from `pcieSwitch`/`numaNode`. Injected `failures` are not simulated; a `lost` GPU is left
 * out with a problem, as the real binding does.
 */
import { z } from 'zod';
import { formatPath } from '../config/errors.js';
import { migDeviceOf } from '../devices/inventory.js';
import type { Gpu, GpuLink, Inventory, InventoryProblem, MigDevice } from '../devices/inventory-types.js';
import { NVLINK_MAX_LINKS, NvmlReturn, TopologyLevel } from '../nvml/codes.js';
import { NvmlError } from '../nvml/errors.js';
import { toSysfsBusId } from '../nvml/pci.js';
import type { Result } from '../result.js';

/** `<G>g.<N>gb` or `<C>c.<G>g.<N>gb`, with an optional attribute suffix such as `+me`. */
const PROFILE = /^(?:(\d+)c\.)?(\d+)g\.(\d+)gb(?:\+.*)?$/;

// Only what the inventory reads. Unknown fields pass (the mock ignores them with a warning), and null
// means "default", as in the mock.
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.int().min(min).max(max).nullish();

const migDeviceSchema = z.looseObject({
  uuid: z.string().min(1),
  profile: z.string().regex(PROFILE, 'expected "<G>g.<N>gb" or "<C>c.<G>g.<N>gb"'),
  giId: int(0),
  ciId: int(0),
  memoryMiB: int(1),
  multiprocessors: int(0),
});

const deviceSchema = z.looseObject({
  uuid: z.string().min(1),
  name: z.string().nullish(),
  minor: int(0, 255),
  pciBusId: z.string().nullish(),
  memoryTotalMiB: int(1),
  computeCapability: z.tuple([z.int().min(0), z.int().min(0)]).nullish(),
  numaNode: int(-1),
  pcieSwitch: int(0),
  nvlinkPeers: z.array(z.int().min(0)).max(NVLINK_MAX_LINKS).nullish(),
  migCapable: z.boolean().nullish(),
  migEnabled: z.boolean().nullish(),
  migDevices: z.array(migDeviceSchema).max(7).nullish(),
  lost: z.boolean().nullish(),
});

const stateSchema = z.looseObject({
  driverVersion: z.string().nullish(),
  cudaDriverVersion: int(1000, 1_000_000),
  devices: z.array(deviceSchema).max(64).nullish(),
});

type MockState = z.output<typeof stateSchema>;
type MockDeviceState = z.output<typeof deviceSchema>;

export type StateInventoryResult = Result<Inventory>;

export interface StateInventoryOptions {
  /**
   * `/proc/driver/nvidia-caps/mig-minors` of the host, for the MIG capability device nodes. Without it,
   * MIG devices list only their parent's `/dev/nvidia<minor>` (the minors are host facts, not NVML's).
   */
  migMinors?: ReadonlyMap<string, number>;
}

/** Names the mock lets a MIG-capable GPU have when `migCapable` is not given. */
const MIG_CAPABLE_NAMES = ['A100', 'A30', 'H100', 'H200', 'B200'];

/** Converts parsed state JSON; `source` names it in errors (`state.json: devices[1].uuid: …`). */
export function inventoryFromMockState(
  json: unknown,
  source: string,
  options: StateInventoryOptions = {},
): StateInventoryResult {
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      error: parsed.error.issues.map((i) => `${source}: ${formatPath(i.path) || '(document)'}: ${i.message}`),
    };
  }
  const state = parsed.data;
  const devices = state.devices ?? [];
  const errors = crossCheck(devices).map((e) => `${source}: ${e}`);
  if (errors.length > 0) return { ok: false, error: errors };

  const problems: InventoryProblem[] = [];
  const present: { gpu: Gpu; device: MockDeviceState }[] = [];
  devices.forEach((device, index) => {
    if (device.lost) {
      // The binding's first per-device call on a lost GPU fails like this.
      const lost = new NvmlError('nvmlDeviceGetUUID', NvmlReturn.GPU_IS_LOST, 'GPU is lost');
      problems.push({ where: `GPU ${index}`, message: lost.message });
      return;
    }
    present.push({ gpu: gpuFrom(device, index, options.migMinors ?? new Map()), device });
  });
  linkGpus(present, devices);
  return {
    ok: true,
    value: {
      driverVersion: state.driverVersion ?? '580.95.05',
      cudaDriverVersion: cudaVersionText(state),
      gpus: present.map((p) => p.gpu),
      problems,
    },
  };
}

/** The mock refuses files that break these rules; so does this. */
function crossCheck(devices: readonly MockDeviceState[]): string[] {
  const errors: string[] = [];
  const seen = new Set<string>();
  devices.forEach((device, index) => {
    const uuids = [device.uuid, ...(device.migDevices ?? []).map((m) => m.uuid)];
    uuids.forEach((uuid, i) => {
      const where = i === 0 ? `devices[${index}].uuid` : `devices[${index}].migDevices[${i - 1}].uuid`;
      if (seen.has(uuid)) errors.push(`${where}: duplicate UUID ${uuid}`);
      seen.add(uuid);
    });
    (device.nvlinkPeers ?? []).forEach((peer, link) => {
      if (peer >= devices.length)
        errors.push(`devices[${index}].nvlinkPeers[${link}]: no device at index ${peer}`);
    });
    const instances = new Map<string, number>();
    (device.migDevices ?? []).forEach((mig, slot) => {
      const ids = `giId ${mig.giId ?? slot + 1} / ciId ${mig.ciId ?? 0}`;
      const first = instances.get(ids);
      if (first !== undefined)
        errors.push(`devices[${index}].migDevices[${slot}]: ${ids} is already used by migDevices[${first}]`);
      else instances.set(ids, slot);
    });
    if (device.migEnabled && device.migCapable === false)
      errors.push(`devices[${index}].migEnabled: MIG cannot be enabled on a GPU that is not MIG-capable`);
    // the mock checks instances only once their ids are unique
    if (instances.size === (device.migDevices ?? []).length)
      errors.push(...gpuInstanceConflicts(device, index));
  });
  return [...errors, ...nvlinkAsymmetries(devices)];
}

/** An NVLink has two ends: GPU i listing n links to GPU j needs GPU j to list n links to GPU i. */
function nvlinkAsymmetries(devices: readonly MockDeviceState[]): string[] {
  const links = (device: MockDeviceState, peer: number) =>
    (device.nvlinkPeers ?? []).filter((p) => p === peer).length;
  const errors: string[] = [];
  devices.forEach((device, i) => {
    devices.forEach((other, j) => {
      const here = links(device, j);
      const there = links(other, i);
      if (here > there)
        errors.push(
          `devices[${i}].nvlinkPeers: ${here} link(s) to device ${j}, but devices[${j}].nvlinkPeers has ` +
            `${there} link(s) to device ${i}: NVLink is symmetric, list every link on both GPUs`,
        );
    });
  });
  return errors;
}

/**
 * MIG devices with the same giId are compute instances of one GPU instance: the same "<G>g.<N>gb" part
 * and memory, and their compute slices fit in G.
 */
function gpuInstanceConflicts(device: MockDeviceState, index: number): string[] {
  const migs = (device.migDevices ?? []).map((mig, slot) => {
    const [, c, g, gb] = PROFILE.exec(mig.profile)!;
    return {
      profile: mig.profile,
      gpuInstance: mig.profile.replace(/^\d+c\./, ''),
      giId: mig.giId ?? slot + 1,
      giSlices: Number(g),
      ciSlices: c === undefined ? Number(g) : Number(c),
      memoryMiB: mig.memoryMiB ?? Number(gb) * 1024,
    };
  });
  const errors: string[] = [];
  migs.forEach((mig, k) => {
    const where = `devices[${index}].migDevices[${k}]`;
    const siblings = migs.slice(0, k).filter((other) => other.giId === mig.giId);
    const first = siblings[0];
    if (first && (first.gpuInstance !== mig.gpuInstance || first.memoryMiB !== mig.memoryMiB)) {
      const j = migs.indexOf(first);
      errors.push(
        `${where}: giId ${mig.giId} is the GPU instance of migDevices[${j}] (${first.profile}, ` +
          `${first.memoryMiB} MiB) but this one is ${mig.profile}, ${mig.memoryMiB} MiB`,
      );
      return;
    }
    const used = siblings.reduce((sum, other) => sum + other.ciSlices, mig.ciSlices);
    if (used > mig.giSlices)
      errors.push(
        `${where}: the compute instances of GPU instance ${mig.giId} need ${used} compute slices; it has ${mig.giSlices}`,
      );
  });
  return errors;
}

function cudaVersionText(state: MockState): string {
  const raw = state.cudaDriverVersion ?? 13000;
  return `${Math.floor(raw / 1000)}.${Math.floor((raw % 1000) / 10)}`;
}

function gpuFrom(device: MockDeviceState, index: number, migMinors: ReadonlyMap<string, number>): Gpu {
  const minor = device.minor ?? index;
  const [major, ccMinor] = device.computeCapability ?? [8, 0];
  const name = device.name ?? 'NVIDIA Mock GPU';
  const migEnabled = device.migEnabled ?? false;
  const migCapable =
    device.migCapable ?? (migEnabled || (major >= 8 && MIG_CAPABLE_NAMES.some((n) => name.includes(n))));
  const numaNode = device.numaNode ?? -1;
  const gpu: Gpu = {
    uuid: device.uuid,
    index,
    name,
    minor,
    memoryMiB: device.memoryTotalMiB ?? 16384,
    busId: toSysfsBusId(device.pciBusId ?? `00000000:${(index + 1).toString(16).padStart(2, '0')}:00.0`),
    numaNode: numaNode >= 0 ? numaNode : null,
    computeCapability: { major, minor: ccMinor },
    deviceNodes: [`/dev/nvidia${minor}`],
    migCapable,
    migEnabled,
    migDevices: [],
    links: [],
  };
  if (migEnabled)
    gpu.migDevices = (device.migDevices ?? []).map((m, slot) => migFrom(gpu, m, slot, migMinors));
  return gpu;
}

function migFrom(
  gpu: Gpu,
  mig: z.output<typeof migDeviceSchema>,
  slot: number,
  migMinors: ReadonlyMap<string, number>,
): MigDevice {
  const [, c, g, gb] = PROFILE.exec(mig.profile)!;
  const gpuInstanceSlices = Number(g);
  const computeInstanceSlices = c === undefined ? gpuInstanceSlices : Number(c);
  const memoryMiB = mig.memoryMiB ?? Number(gb) * 1024;
  return migDeviceOf(gpu, {
    uuid: mig.uuid,
    slot,
    gpuInstanceId: mig.giId ?? slot + 1,
    computeInstanceId: mig.ciId ?? 0,
    // The attributes as the mock's nvmlDeviceGetAttributes_v2 reports them (A100 engine counts per
    // GPU-instance size): a `+me` suffix in the state file is not visible to the binding either.
    attributes: {
      multiprocessorCount: mig.multiprocessors ?? 14 * computeInstanceSlices,
      sharedCopyEngineCount: gpuInstanceSlices,
      sharedDecoderCount: gpuInstanceSlices >= 7 ? 5 : gpuInstanceSlices >= 3 ? 2 : gpuInstanceSlices - 1,
      sharedEncoderCount: 0,
      sharedJpegCount: gpuInstanceSlices >= 7 ? 1 : 0,
      sharedOfaCount: gpuInstanceSlices >= 7 ? 1 : 0,
      gpuInstanceSliceCount: gpuInstanceSlices,
      computeInstanceSliceCount: computeInstanceSlices,
      memoryMiB,
    },
    migMinors,
  });
}

/**
 * Link k of a GPU goes to device `nvlinkPeers[k]`; PCIe distance as the mock's
 * nvmlDeviceGetTopologyCommonAncestor answers it: same switch SINGLE, same NUMA node NODE, else SYSTEM.
 * Lost GPUs are neither linked nor counted, as in `buildInventory`.
 */
function linkGpus(
  present: { gpu: Gpu; device: MockDeviceState }[],
  devices: readonly MockDeviceState[],
): void {
  const presentUuids = new Set(present.map((p) => p.gpu.uuid));
  for (const a of present) {
    const nvlinks = new Map<string, number>();
    for (const peer of a.device.nvlinkPeers ?? []) {
      const uuid = devices[peer]!.uuid;
      if (presentUuids.has(uuid)) nvlinks.set(uuid, (nvlinks.get(uuid) ?? 0) + 1);
    }
    a.gpu.links = present
      .filter((b) => b !== a)
      .map(
        (b): GpuLink => ({
          peerUuid: b.gpu.uuid,
          nvlinks: nvlinks.get(b.gpu.uuid) ?? 0,
          pcieLevel: pcieLevel(a.device, b.device),
        }),
      );
  }
}

function pcieLevel(a: MockDeviceState, b: MockDeviceState): number {
  // An absent pcieSwitch is one no other GPU has.
  if (a.pcieSwitch != null && a.pcieSwitch === b.pcieSwitch) return TopologyLevel.SINGLE;
  if (a.numaNode != null && a.numaNode >= 0 && a.numaNode === b.numaNode) return TopologyLevel.NODE;
  return TopologyLevel.SYSTEM;
}
