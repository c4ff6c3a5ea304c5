/**
 * GPU feature labels: the node labels NVIDIA's gpu-feature-discovery (GFD) writes, computed from what
 * the agent already knows (inventory, effective config, lost GPUs, two host facts), so a cluster needs
 * neither GFD nor its DaemonSet; plus vgpu-agent's own labels for split slices and HAMi mode. Pure.
 *
 * Names and values follow GFD v0.20 (`internal/lm` of NVIDIA/k8s-device-plugin) for the same node and
 * config; where GFD has no deterministic answer (several GPU models on one node) or cannot know (split
 * slices, HAMi mode, an honoured rename, a lost GPU) the choice is ours and docs/labels.md lists it.
 */
import type { EffectiveConfig, HamiSettings } from '../config/schema.js';
import { isLabelValue, isQualifiedName } from '../kube/names.js';
import type { Gpu, Inventory, MigDevice } from './inventory-types.js';
import { GPU_RESOURCE, migResourceName } from './mig-strategy.js';
import type { ResourceSpec } from './resource-types.js';
import { buildResources, sharingConfigOf } from './resources.js';

/** Our own labels' prefix; GFD's are under `nvidia.com/`. */
export const AGENT_LABEL_PREFIX = 'vgpu-agent.io/';

/** PCI classes GFD maps to `gpu.mode` (nvpci: VGA controller, 3D controller). */
export const PCI_CLASS_VGA = 0x030000;
export const PCI_CLASS_3D = 0x030200;

/** What GFD reads besides NVML: the machine type (DMI product name) and each GPU's PCI class. */
export interface HostLabelFacts {
  /** `/sys/class/dmi/id/product_name`, trimmed; null when unreadable */
  machineType: string | null;
  /** by GPU UUID; null (or absent) when unreadable */
  pciClasses: ReadonlyMap<string, number | null>;
}

export interface NodeLabelInput {
  inventory: Inventory;
  config: EffectiveConfig;
  /** GPUs that fell off the bus or no longer answer NVML: left out as if absent */
  lostGpus: ReadonlySet<string>;
  host: HostLabelFacts;
}

export interface NodeLabelSet {
  /** key → value, keys sorted */
  labels: Record<string, string>;
  /** labels left out (a value Kubernetes would refuse, a version NVML gave in an odd form) */
  warnings: string[];
}

type Labels = Map<string, string>;

/** GFD's sanitise: drop all but `[A-Za-z0-9-_. ]`, then join the words with `-`. */
export function sanitiseLabelValue(text: string): string {
  return text
    .replace(/[^A-Za-z0-9\-_. ]/g, '')
    .split(' ')
    .filter((word) => word !== '')
    .join('-');
}

/** GFD's architecture family of a CUDA compute capability. */
export function gpuFamily(major: number, minor: number): string {
  const families: Record<number, string> = {
    1: 'tesla',
    2: 'fermi',
    3: 'kepler',
    5: 'maxwell',
    6: 'pascal',
    9: 'hopper',
    10: 'blackwell',
    12: 'blackwell',
    13: 'rubin',
  };
  if (major === 7) return minor < 5 ? 'volta' : 'turing';
  if (major === 8) return minor < 9 ? 'ampere' : 'ada-lovelace';
  return families[major] ?? 'undefined';
}

/** The labels this node gets: GFD's set, then ours; invalid ones left out with a warning. */
export function nodeLabels(input: NodeLabelInput): NodeLabelSet {
  const { inventory, config, lostGpus } = input;
  const gpus = inventory.gpus.filter((g) => !lostGpus.has(g.uuid)).sort((a, b) => a.index - b.index);
  const warnings: string[] = [];
  // GFD writes no device label on a node without GPUs.
  if (gpus.length === 0) return { labels: {}, warnings };
  const labels: Labels = new Map();
  labels.set('nvidia.com/gpu.machine', sanitiseLabelValue(input.host.machineType ?? 'unknown'));
  versionLabels(inventory, labels, warnings);
  labels.set('nvidia.com/mig.capable', String(gpus.some((g) => g.migCapable)));
  // MPS is refused by vgpu-agent's config, so never active; GFD writes false then too.
  labels.set('nvidia.com/mps.capable', 'false');
  const sharing = new SharingLookup(config);
  fullGpuLabels(gpus, sharing, labels);
  migLabels(gpus, config.flags.migStrategy, sharing, labels);
  labels.set('nvidia.com/gpu.mode', gpuMode(gpus, input.host.pciClasses));
  agentLabels({ ...inventory, gpus }, config, labels, warnings);
  return { labels: validLabels(labels, warnings), warnings };
}

function validLabels(labels: Labels, warnings: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of [...labels.keys()].sort()) {
    const value = labels.get(key)!;
    if (!isQualifiedName(key)) warnings.push(`label ${key} left out: not a valid label key`);
    else if (!isLabelValue(value))
      warnings.push(`label ${key} left out: ${JSON.stringify(value)} is not a valid label value`);
    else out[key] = value;
  }
  return out;
}

/** Driver `580.95.05` and CUDA `13.0`, under GFD's current and deprecated names. */
function versionLabels(inventory: Inventory, labels: Labels, warnings: string[]): void {
  const driver = inventory.driverVersion.split('.');
  if (driver.length < 2 || driver.length > 3) {
    warnings.push(`driver labels left out: version "${inventory.driverVersion}" is not X.Y[.Z]`);
  } else {
    const [major, minor, revision = ''] = driver as [string, string, string?];
    for (const [prefix, rev] of [
      ['cuda.driver', 'rev'],
      ['cuda.driver-version', 'revision'],
    ] as const) {
      labels.set(`nvidia.com/${prefix}.major`, major);
      labels.set(`nvidia.com/${prefix}.minor`, minor);
      labels.set(`nvidia.com/${prefix}.${rev}`, revision);
    }
    labels.set('nvidia.com/cuda.driver-version.full', inventory.driverVersion);
  }
  // Without libcuda GFD fails as a whole; the runtime labels alone are left out here.
  if (inventory.cudaDriverVersion === null) return;
  const [major = '', minor = '0'] = inventory.cudaDriverVersion.split('.');
  for (const prefix of ['cuda.runtime', 'cuda.runtime-version']) {
    labels.set(`nvidia.com/${prefix}.major`, major);
    labels.set(`nvidia.com/${prefix}.minor`, minor);
  }
  labels.set('nvidia.com/cuda.runtime-version.full', `${major}.${minor}`);
}

/** How a resource is shared, as GFD reads it from the config (first entry for the name wins). */
interface Replication {
  replicas: number;
  renamed: boolean;
}

class SharingLookup {
  private readonly byName = new Map<string, Replication>();

  constructor(config: EffectiveConfig) {
    // Split slices are shares too: GFD does not know them, but a node whose GPUs are split is shared.
    const entries = [
      ...config.sharing.timeSlicing.resources.map((r) => ({ ...r, shares: r.replicas })),
      ...config.sharing.split.resources.map((r) => ({ ...r, shares: r.count })),
    ];
    for (const r of entries) {
      if (!this.byName.has(r.name))
        this.byName.set(r.name, { replicas: r.shares, renamed: r.rename !== null });
    }
    // HAMi mode shares every whole GPU the same way (its own resource name counts as a rename).
    const { hami } = config.sharing;
    if (hami) {
      this.byName.set(GPU_RESOURCE, {
        replicas: hami.deviceSplitCount,
        renamed: hami.resourceCountName !== GPU_RESOURCE,
      });
    }
  }

  /** GFD: replicas 1 and sharing-strategy none for a resource the config does not share. */
  of(resource: string): Replication {
    return this.byName.get(resource) ?? { replicas: 1, renamed: false };
  }
}

/** GFD's `<resource>.product/count/replicas/sharing-strategy`; `sharing` null = GFD "without sharing". */
function baseLabels(
  resource: string,
  count: number,
  productParts: string[],
  sharing: Replication | null,
  labels: Labels,
): void {
  const replicas = sharing === null ? 0 : sharing.replicas;
  const shared = sharing !== null && sharing.replicas > 1;
  const parts = productParts.map(sanitiseLabelValue).filter((p) => p !== '');
  if (shared && !sharing.renamed) parts.push('SHARED');
  labels.set(`${resource}.product`, parts.join('-'));
  labels.set(`${resource}.count`, String(count));
  labels.set(`${resource}.replicas`, String(replicas));
  labels.set(`${resource}.sharing-strategy`, shared ? 'time-slicing' : 'none');
}

/**
 * `nvidia.com/gpu.*` from the GPUs, one model at a time: `count` is every GPU of that model, MIG
 * enabled or not, and full GPUs' labels (with sharing) override MIG-enabled ones (without). GFD picks
 * among several models at random (Go map order); here the lowest-index GPU's model wins.
 */
function fullGpuLabels(gpus: readonly Gpu[], sharing: SharingLookup, labels: Labels): void {
  const counts = new Map<string, number>();
  for (const gpu of gpus) counts.set(gpu.name, (counts.get(gpu.name) ?? 0) + 1);
  const firstOf = (migEnabled: boolean) => {
    const first = new Map<string, Gpu>();
    for (const gpu of gpus)
      if (gpu.migEnabled === migEnabled && !first.has(gpu.name)) first.set(gpu.name, gpu);
    return [...first.values()].reverse(); // applied last = wins
  };
  for (const gpu of firstOf(true)) gpuModelLabels(gpu, counts.get(gpu.name)!, null, labels);
  for (const gpu of firstOf(false))
    gpuModelLabels(gpu, counts.get(gpu.name)!, sharing.of(GPU_RESOURCE), labels);
}

function gpuModelLabels(gpu: Gpu, count: number, sharing: Replication | null, labels: Labels): void {
  baseLabels(GPU_RESOURCE, count, [gpu.name], sharing, labels);
  if (gpu.memoryMiB !== 0) labels.set(`${GPU_RESOURCE}.memory`, String(gpu.memoryMiB));
  const cc = gpu.computeCapability;
  if (cc === null || cc.major === 0) return;
  labels.set(`${GPU_RESOURCE}.family`, gpuFamily(cc.major, cc.minor));
  labels.set(`${GPU_RESOURCE}.compute.major`, String(cc.major));
  labels.set(`${GPU_RESOURCE}.compute.minor`, String(cc.minor));
}

/** Per MIG profile: the first device (its attributes) and how many there are. */
function migProfiles(gpus: readonly Gpu[]): Map<string, { device: MigDevice; model: string; count: number }> {
  const profiles = new Map<string, { device: MigDevice; model: string; count: number }>();
  for (const gpu of gpus.filter((g) => g.migEnabled)) {
    for (const device of gpu.migDevices) {
      const name = device.profile.replaceAll('+', '.');
      const seen = profiles.get(name);
      if (seen) seen.count++;
      else profiles.set(name, { device, model: gpu.name, count: 1 });
    }
  }
  return profiles;
}

/** `mig.strategy`, then `nvidia.com/gpu.*` (single) or `nvidia.com/mig-<profile>.*` (mixed). */
function migLabels(
  gpus: readonly Gpu[],
  strategy: EffectiveConfig['flags']['migStrategy'],
  sharing: SharingLookup,
  labels: Labels,
): void {
  if (strategy === 'none') return;
  labels.set('nvidia.com/mig.strategy', strategy);
  const profiles = migProfiles(gpus);
  if (strategy === 'mixed') {
    for (const [name, p] of profiles) {
      const resource = migResourceName(name);
      migDeviceLabels(resource, p.model, name, p.count, p.device, sharing.of(resource), labels);
    }
    return;
  }
  const enabled = gpus.filter((g) => g.migEnabled);
  if (enabled.length === 0) return; // no MIG: single is none
  const invalid =
    enabled.some((g) => g.migDevices.length === 0) || enabled.length !== gpus.length || profiles.size !== 1;
  if (invalid) {
    labels.set(`${GPU_RESOURCE}.product`, [sanitiseLabelValue(enabled[0]!.name), 'MIG', 'INVALID'].join('-'));
    const invalidValues = { count: '0', replicas: '0', 'sharing-strategy': '', memory: '0' };
    for (const [suffix, value] of Object.entries(invalidValues))
      labels.set(`${GPU_RESOURCE}.${suffix}`, value);
    return;
  }
  const [[name, p]] = [...profiles] as [[string, { device: MigDevice; model: string; count: number }]];
  migDeviceLabels(GPU_RESOURCE, p.model, name, p.count, p.device, sharing.of(GPU_RESOURCE), labels);
}

function migDeviceLabels(
  resource: string,
  model: string,
  profile: string,
  count: number,
  device: MigDevice,
  sharing: Replication,
  labels: Labels,
): void {
  baseLabels(resource, count, [model, 'MIG', profile], sharing, labels);
  const attributes: [string, number][] = [
    ['memory', device.memoryMiB],
    ['multiprocessors', device.multiprocessorCount],
    ['slices.gi', device.gpuInstanceSlices],
    ['slices.ci', device.computeInstanceSlices],
    ['engines.copy', device.engines.copy],
    ['engines.decoder', device.engines.decoder],
    ['engines.encoder', device.engines.encoder],
    ['engines.jpeg', device.engines.jpeg],
    ['engines.ofa', device.engines.ofa],
  ];
  for (const [suffix, value] of attributes) labels.set(`${resource}.${suffix}`, String(value));
}

/** `graphics` (VGA class), `compute` (3D class), `unknown` when unreadable or the GPUs differ. */
function gpuMode(gpus: readonly Gpu[], classes: ReadonlyMap<string, number | null>): string {
  const seen = new Set(gpus.map((g) => classes.get(g.uuid) ?? null));
  if (seen.size !== 1) return 'unknown';
  const [only] = [...seen];
  return only === PCI_CLASS_VGA ? 'graphics' : only === PCI_CLASS_3D ? 'compute' : 'unknown';
}

/**
 * Ours, under `vgpu-agent.io/<name>.` for each split or HAMi resource as advertised (the name without
 * its domain), built as the plugin builds them so that they describe what kubelet is offered.
 */
function agentLabels(
  inventory: Inventory,
  config: EffectiveConfig,
  labels: Labels,
  warnings: string[],
): void {
  const { split, hami } = config.sharing;
  if (split.resources.length === 0 && !hami) return;
  let resources: ReturnType<typeof buildResources>['resources'];
  try {
    resources = buildResources(sharingConfigOf(config), inventory).resources;
  } catch (err) {
    warnings.push(`${hami ? 'HAMi' : 'split'} labels left out: ${(err as Error).message}`);
    return;
  }
  for (const resource of resources) {
    const base = `${AGENT_LABEL_PREFIX}${resource.name.slice(resource.name.indexOf('/') + 1)}`;
    if (resource.sharing === 'split') splitLabels(resource, base, labels);
    // In HAMi mode the HAMi resource is the only one.
    else if (hami) hamiLabels(hami, base, labels);
  }
}

/**
 * `sharing-strategy=split`, `slices` per GPU (the most, when entries differ), and the smallest slice's
 * memory (MiB) and SM percent. A split resource always has slices: `count` is at least 1 and an entry
 * that selects no GPU makes no resource.
 */
function splitLabels(resource: ResourceSpec, base: string, labels: Labels): void {
  const slices = resource.devices.flatMap((d) => (d.slice ? [d.slice] : []));
  // Devices per GPU: its slices, or 1 for a GPU the resource offers whole (never more than slices).
  const slicesPerGpu = new Map<string, number>();
  for (const d of resource.devices)
    slicesPerGpu.set(d.target.uuid, (slicesPerGpu.get(d.target.uuid) ?? 0) + 1);
  labels.set(`${base}.sharing-strategy`, 'split');
  labels.set(`${base}.slices`, String(Math.max(...slicesPerGpu.values())));
  labels.set(`${base}.slice.memory`, String(Math.min(...slices.map((s) => s.memoryMiB))));
  labels.set(`${base}.slice.cores`, String(Math.min(...slices.map((s) => s.corePercent))));
}

/**
 * `sharing-strategy=hami`, `split-count` (most containers per GPU) and the scaling factors that set
 * the memory and compute registered for HAMi's scheduler (above 1: oversubscribed).
 */
function hamiLabels(hami: HamiSettings, base: string, labels: Labels): void {
  labels.set(`${base}.sharing-strategy`, 'hami');
  labels.set(`${base}.split-count`, String(hami.deviceSplitCount));
  labels.set(`${base}.memory-scaling`, String(hami.deviceMemoryScaling));
  labels.set(`${base}.core-scaling`, String(hami.deviceCoreScaling));
}
