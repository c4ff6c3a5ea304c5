/**
 * The pure core: `(sharing config, inventory) → resources`. MIG strategy first (which physical
 * targets exist under which name), then time-slicing replicas or split slices per resource name.
 * Deterministic: the same node and config always give the same IDs, so kubelet's checkpointed
 * allocations stay valid across restarts and reloads.
 */
import type { DeviceSelection } from '../config/devices.js';
import type { EffectiveConfig, HamiSettings } from '../config/schema.js';
import {
  bytesText,
  DEVICE_LIST_LIMIT_BYTES,
  KUBELET_MAX_MESSAGE_BYTES,
  targetListBytes,
} from './device-list-size.js';
import type { Inventory } from './inventory-types.js';
import { GPU_RESOURCE, type MigStrategy, targetsByResource } from './mig-strategy.js';
import type { AdvertisedDevice, DeviceTarget, ResourceSpec, SharingMode } from './resource-types.js';

interface SharedResourceConfig {
  name: string;
  /** resolved rename (renameByDefault applied); null/undefined = keep the name */
  rename?: string | null;
  devices: DeviceSelection;
}

export interface SharingConfig {
  migStrategy: MigStrategy;
  timeSlicing: {
    failRequestsGreaterThanOne: boolean;
    resources: readonly (SharedResourceConfig & { replicas: number })[];
  };
  split: {
    resources: readonly (SharedResourceConfig & {
      count: number;
      memoryScaling: number;
      coreScaling: number;
    })[];
  };
  /** HAMi scheduler mode: every GPU advertised as `deviceSplitCount` replicas; null when off */
  hami?: HamiSettings | null;
}

/** The part of an effective config that decides the resources. */
export function sharingConfigOf(config: EffectiveConfig): SharingConfig {
  return {
    migStrategy: config.flags.migStrategy,
    timeSlicing: config.sharing.timeSlicing,
    split: config.sharing.split,
    hami: config.sharing.hami,
  };
}

/** The config cannot be applied to this node's devices (a device it names is not here...). */
export class ResourceConfigError extends Error {
  override readonly name = 'ResourceConfigError';
}

export interface BuiltResources {
  resources: ResourceSpec[];
  /** things worth a log line that do not stop the config (a name that matches nothing here) */
  warnings: string[];
}

const SHARE_SEPARATOR = '::';
/** hamiReplicaId's form, `<GPU uuid>-<n>` */
const HAMI_REPLICA_ID = /^(GPU-\S+)-(0|[1-9]\d*)$/;

/** `<uuid>::<n>`: a replica or slice of a GPU or MIG device. */
export function shareId(uuid: string, n: number): string {
  return `${uuid}${SHARE_SEPARATOR}${n}`;
}

/**
 * The inverse of the IDs this plugin advertises (what kubelet then reports in PodResources): a bare
 * GPU or MIG UUID, or `shareId`'s `<uuid>::<n>` for a time-slicing replica or a split slice. Anything
 * else (another plugin's device, a malformed share number) is undefined. With the node's UUIDs
 * (`known`), HAMi mode's `<uuid>-<n>` is recognised too: only they tell it from a UUID of its own.
 */
export function parseDeviceId(
  id: string,
  known?: ReadonlySet<string>,
): { uuid: string; share?: number } | undefined {
  if (known && !known.has(id)) {
    const hami = HAMI_REPLICA_ID.exec(id);
    if (hami && known.has(hami[1]!)) return { uuid: hami[1]!, share: Number(hami[2]) };
  }
  const separator = id.lastIndexOf(SHARE_SEPARATOR);
  const uuid = separator < 0 ? id : id.slice(0, separator);
  if (!/^(?:GPU|MIG)-\S+$/.test(uuid) || uuid.includes(SHARE_SEPARATOR)) return undefined;
  if (separator < 0) return { uuid };
  const share = id.slice(separator + SHARE_SEPARATOR.length);
  return /^(?:0|[1-9]\d*)$/.test(share) ? { uuid, share: Number(share) } : undefined;
}

/** Which of a resource's targets a `devices` selection covers, in the resource's order. */
function selectTargets(
  targets: readonly DeviceTarget[],
  selection: DeviceSelection,
  where: string,
): DeviceTarget[] {
  switch (selection.type) {
    case 'all':
      return [...targets];
    case 'count':
      if (selection.count > targets.length) {
        throw new ResourceConfigError(
          `${where}: requested ${selection.count} devices to be replicated, but only ${targets.length} devices available`,
        );
      }
      return targets.slice(0, selection.count);
    case 'list': {
      const chosen = new Set<DeviceTarget>();
      for (const ref of selection.devices) {
        const match =
          ref.type === 'uuid'
            ? targets.find((t) => t.uuid === ref.uuid)
            : targets.find(
                (t) => t.index === (ref.type === 'index' ? String(ref.index) : `${ref.gpu}:${ref.mig}`),
              );
        if (!match) {
          const what =
            ref.type === 'uuid'
              ? `with UUID ${ref.uuid}`
              : `at index ${ref.type === 'index' ? ref.index : `${ref.gpu}:${ref.mig}`}`;
          throw new ResourceConfigError(`${where}: no matching device ${what}`);
        }
        chosen.add(match);
      }
      return targets.filter((t) => chosen.has(t));
    }
  }
}

/** Part of a resource's devices, planned before any is built: which targets, and how. */
interface PlannedPart {
  targets: DeviceTarget[];
  /** the config entry that shares these targets; null for GPUs advertised whole */
  where: string | null;
  share: { kind: 'time-slicing'; replicas: number } | { kind: 'split'; settings: SplitSettings } | null;
}

type SplitSettings = SharingConfig['split']['resources'][number];

/** A part whose targets are shared (time-slicing replicas or split slices). */
type SharedPart = PlannedPart & { share: NonNullable<PlannedPart['share']> };

interface PlannedResource {
  name: string;
  sharing: SharingMode;
  failGreaterThanOne: boolean;
  parts: PlannedPart[];
}

const sharesOf = (part: PlannedPart): number | null =>
  part.share === null ? null : part.share.kind === 'split' ? part.share.settings.count : part.share.replicas;

/**
 * Builds what each resource advertises. The device lists are sized from the plan first, so a config
 * whose list kubelet could not receive is refused before a device is built.
 */
export function buildResources(config: SharingConfig, inventory: Inventory): BuiltResources {
  if (config.hami) return buildHamiResources(config.hami, config.migStrategy, inventory);
  const { planned, warnings } = planResources(config, inventory);
  for (const resource of planned) checkDeviceListSize(resource);
  const resources = planned
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(
      (r): ResourceSpec => ({
        name: r.name,
        sharing: r.sharing,
        devices: r.parts.flatMap(buildPart),
        // only time-slicing entries set it; the schema keeps a name time-sliced or split, never both
        failRequestsGreaterThanOne: r.failGreaterThanOne,
      }),
    );
  return { resources, warnings };
}

function planResources(
  config: SharingConfig,
  inventory: Inventory,
): { planned: PlannedResource[]; warnings: string[] } {
  const base = targetsByResource(inventory, config.migStrategy);
  const out = new Map<string, PlannedResource>();
  const add = (name: string, sharing: SharingMode, part: PlannedPart, failGreaterThanOne = false) => {
    if (part.targets.length === 0) return;
    const existing = out.get(name);
    if (!existing) {
      out.set(name, { name, sharing, failGreaterThanOne, parts: [part] });
      return;
    }
    // Unselected whole devices and the replicas of the selected ones may share a name.
    existing.parts.push(part);
    if (sharing !== 'exclusive') existing.sharing = sharing;
    existing.failGreaterThanOne ||= failGreaterThanOne;
  };

  const entries = sharedEntries(config);
  const warnings = entries
    .filter((entry) => !base.has(entry.r.name))
    .map(
      (entry) =>
        `${entry.where}: no ${entry.r.name} devices on this node (resources here: ${[...base.keys()].join(', ') || 'none'})`,
    );

  for (const [name, targets] of base) {
    const shared = new Set<DeviceTarget>();
    for (const entry of entries.filter((e) => e.r.name === name)) {
      const selected = selectTargets(targets, entry.r.devices, entry.where).filter((t) => !shared.has(t));
      for (const target of selected) shared.add(target);
      const failGreaterThanOne =
        entry.kind === 'time-slicing' && config.timeSlicing.failRequestsGreaterThanOne;
      add(entry.r.rename ?? name, entry.kind, sharedPart(entry, name, selected), failGreaterThanOne);
    }
    // GPUs no entry selects stay whole devices under the original name.
    add(name, 'exclusive', { targets: targets.filter((t) => !shared.has(t)), where: null, share: null });
  }
  return { planned: [...out.values()], warnings };
}

type SharedEntry = ReturnType<typeof sharedEntries>[number];

function sharedPart(entry: SharedEntry, name: string, targets: DeviceTarget[]): PlannedPart {
  const { where } = entry;
  if (entry.kind === 'time-slicing') {
    return { targets, where, share: { kind: 'time-slicing', replicas: entry.r.replicas } };
  }
  const mig = targets.find((t) => t.kind === 'mig');
  if (mig) {
    throw new ResourceConfigError(
      `${where}: split slices whole GPUs, but ${name} holds MIG devices here (${mig.uuid}); ` +
        'use time-slicing for MIG devices or migStrategy none',
    );
  }
  return { targets, where, share: { kind: 'split', settings: entry.r } };
}

/** Every time-slicing and split entry, with its path in the config; a name may have several. */
function sharedEntries(config: SharingConfig) {
  return [
    ...config.timeSlicing.resources.map((r, i) => ({
      kind: 'time-slicing' as const,
      where: `sharing.timeSlicing.resources[${i}]`,
      r,
    })),
    ...config.split.resources.map((r, i) => ({
      kind: 'split' as const,
      where: `sharing.split.resources[${i}]`,
      r,
    })),
  ];
}

/**
 * Refuses a resource whose ListAndWatch message would not fit: computed from the plan, in O(targets).
 * `remedy`: what to change, when it is not the entries' replicas, count or device selections.
 */
function checkDeviceListSize(resource: Pick<PlannedResource, 'name' | 'parts'>, remedy?: string): void {
  let devices = 0;
  let bytes = 0;
  for (const part of resource.parts) {
    const shares = sharesOf(part);
    devices += part.targets.length * (shares ?? 1);
    for (const target of part.targets) bytes += targetListBytes(target, shares);
  }
  if (bytes <= DEVICE_LIST_LIMIT_BYTES) return;
  const shared = resource.parts.filter((p): p is SharedPart => p.share !== null);
  const made = shared.map((p) => `${p.targets.length} × ${sharesOf(p)} ${shareNoun(p)}`).join(' + ');
  const knob = shared.some((p) => p.share.kind === 'split') ? 'count' : 'replicas';
  const where = shared.length > 0 ? `${shared.map((p) => p.where).join(', ')}: ` : '';
  throw new ResourceConfigError(
    `${where}${resource.name} would have ${devices} devices (${made}), a ListAndWatch message of ` +
      `${bytesText(bytes)}; at most ${bytesText(DEVICE_LIST_LIMIT_BYTES)} fit safely under kubelet's ` +
      `${KUBELET_MAX_MESSAGE_BYTES / 1024 / 1024} MiB message limit: ${remedy ?? `lower ${knob} or select fewer devices`}`,
  );
}

const shareNoun = (part: SharedPart) => (part.share.kind === 'split' ? 'slices' : 'replicas');

function buildPart(part: PlannedPart): AdvertisedDevice[] {
  const { share } = part;
  if (share === null) return part.targets.map((target) => ({ id: target.uuid, target }));
  if (share.kind === 'time-slicing') {
    return part.targets.flatMap((target) =>
      Array.from(
        { length: share.replicas },
        (_, n): AdvertisedDevice => ({ id: shareId(target.uuid, n), target, share: n }),
      ),
    );
  }
  const r = share.settings;
  return part.targets.flatMap((target) => {
    const slice = {
      memoryMiB: Math.floor((target.memoryMiB * r.memoryScaling) / r.count),
      corePercent: Math.floor((100 * r.coreScaling) / r.count),
    };
    return Array.from(
      { length: r.count },
      (_, n): AdvertisedDevice => ({ id: shareId(target.uuid, n), target, share: n, slice }),
    );
  });
}

/**
 * `<uuid>-<n>`: a replica of a GPU in HAMi mode, HAMi's own ID form. A node moving from HAMi's device
 * plugin to vgpu-agent keeps the IDs kubelet has checkpointed for its running pods, so kubelet still
 * counts those replicas as in use. Replica IDs carry nothing else: the scheduler's annotation says which
 * GPU a container gets.
 */
export function hamiReplicaId(uuid: string, n: number): string {
  return `${uuid}-${n}`;
}

/** HAMi mode: the whole GPUs, each as `deviceSplitCount` replicas under `resourceCountName`. */
function buildHamiResources(
  hami: HamiSettings,
  migStrategy: MigStrategy,
  inventory: Inventory,
): BuiltResources {
  if (migStrategy !== 'none') {
    throw new ResourceConfigError(
      `sharing.hami shares whole GPUs: flags.migStrategy must be none (got ${migStrategy})`,
    );
  }
  // Strategy none: every GPU, MIG-enabled or not, is one whole target under nvidia.com/gpu.
  const gpus = targetsByResource(inventory, 'none').get(GPU_RESOURCE) ?? [];
  const part: PlannedPart = {
    targets: gpus,
    where: 'sharing.hami',
    share: { kind: 'time-slicing', replicas: hami.deviceSplitCount },
  };
  // HAMi mode selects no devices: only deviceSplitCount makes the list shorter.
  checkDeviceListSize({ name: hami.resourceCountName, parts: [part] }, 'lower deviceSplitCount');
  const devices = gpus.flatMap((target) =>
    Array.from(
      { length: hami.deviceSplitCount },
      (_, n): AdvertisedDevice => ({ id: hamiReplicaId(target.uuid, n), target, share: n }),
    ),
  );
  const warnings = gpus.length === 0 ? ['sharing.hami: no GPUs on this node'] : [];
  return {
    resources:
      devices.length === 0
        ? []
        : [{ name: hami.resourceCountName, sharing: 'hami', devices, failRequestsGreaterThanOne: false }],
    warnings,
  };
}
