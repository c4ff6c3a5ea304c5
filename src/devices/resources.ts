/**
 * The pure core: `(sharing config, inventory) → resources`. MIG strategy first (which physical
 * targets exist under which name), then time-slicing replicas or split slices per resource name.
 * Deterministic: the same node and config always give the same IDs, so kubelet's checkpointed
 * allocations stay valid across restarts and reloads.
 */
import type { DeviceSelection } from '../config/devices.js';
import type { Inventory } from './inventory-types.js';
import { type MigStrategy, targetsByResource } from './mig-strategy.js';
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

/** `<uuid>::<n>`: a replica or slice of a GPU or MIG device. */
export function shareId(uuid: string, n: number): string {
  return `${uuid}::${n}`;
}

/** Which of a resource's targets a `devices` selection covers, in the resource's order. */
export function selectTargets(
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

function exclusive(target: DeviceTarget): AdvertisedDevice {
  return { id: target.uuid, target };
}

export function buildResources(config: SharingConfig, inventory: Inventory): BuiltResources {
  const warnings: string[] = [];
  const base = targetsByResource(inventory, config.migStrategy);
  const out = new Map<
    string,
    { sharing: SharingMode; devices: AdvertisedDevice[]; failGreaterThanOne: boolean }
  >();
  const add = (
    name: string,
    sharing: SharingMode,
    devices: AdvertisedDevice[],
    failGreaterThanOne = false,
  ) => {
    if (devices.length === 0) return;
    const existing = out.get(name);
    if (!existing) {
      out.set(name, { sharing, devices, failGreaterThanOne });
      return;
    }
    // Unselected whole devices and the replicas of the selected ones may share a name.
    existing.devices.push(...devices);
    if (sharing !== 'exclusive') existing.sharing = sharing;
    existing.failGreaterThanOne ||= failGreaterThanOne;
  };

  // A name may have several entries, each with its own `devices` list (the schema requires them then).
  const entries = [
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
  for (const entry of entries) {
    if (!base.has(entry.r.name)) {
      warnings.push(
        `${entry.where}: no ${entry.r.name} devices on this node (resources here: ${[...base.keys()].join(', ') || 'none'})`,
      );
    }
  }

  for (const [name, targets] of base) {
    const shared = new Set<DeviceTarget>();
    for (const entry of entries.filter((e) => e.r.name === name)) {
      const selected = selectTargets(targets, entry.r.devices, entry.where).filter((t) => !shared.has(t));
      for (const target of selected) shared.add(target);
      if (entry.kind === 'time-slicing') {
        const replicas = 'replicas' in entry.r ? entry.r.replicas : 0;
        const devices = selected.flatMap((target) =>
          Array.from(
            { length: replicas },
            (_, n): AdvertisedDevice => ({ id: shareId(target.uuid, n), target, share: n }),
          ),
        );
        add(entry.r.rename ?? name, 'time-slicing', devices, config.timeSlicing.failRequestsGreaterThanOne);
      } else {
        const r = entry.r as SharingConfig['split']['resources'][number];
        const mig = selected.find((t) => t.kind === 'mig');
        if (mig) {
          throw new ResourceConfigError(
            `${entry.where}: split slices whole GPUs, but ${name} holds MIG devices here (${mig.uuid}); ` +
              'use time-slicing for MIG devices or migStrategy none',
          );
        }
        const devices = selected.flatMap((target) => {
          const slice = {
            memoryMiB: Math.floor((target.memoryMiB * r.memoryScaling) / r.count),
            corePercent: Math.floor((100 * r.coreScaling) / r.count),
          };
          return Array.from(
            { length: r.count },
            (_, n): AdvertisedDevice => ({ id: shareId(target.uuid, n), target, share: n, slice }),
          );
        });
        add(entry.r.rename ?? name, 'split', devices);
      }
    }
    // GPUs no entry selects stay whole devices under the original name.
    add(name, 'exclusive', targets.filter((t) => !shared.has(t)).map(exclusive));
  }

  const resources = [...out.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([name, r]): ResourceSpec => ({
        name,
        sharing: r.sharing,
        devices: r.devices,
        failRequestsGreaterThanOne: r.sharing === 'time-slicing' && r.failGreaterThanOne,
      }),
    );
  return { resources, warnings };
}
