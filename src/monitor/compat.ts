/**
 * `--compat`: opt-in extra series under other exporters' names, for the dashboards and tools built on
 * them (dcgm-exporter's `DCGM_FI_DEV_*`, HAMi's `hami_*`). Each mode is a FamilySet served next to the
 * monitor's own families from the same snapshot; none is on by default, since each adds series.
 */
import { dcgmFamilySet } from './compat-dcgm.js';
import { hamiFamilySet } from './compat-hami.js';
import type { FamilySet } from './metric-families.js';

export const COMPAT_MODES = ['dcgm', 'hami'] as const;
export type CompatMode = (typeof COMPAT_MODES)[number];

export interface CompatContext {
  /** the node's name (NODE_NAME): dcgm's `Hostname` label, HAMi's `node` label */
  nodeName?: string;
}

export function isCompatMode(value: string): value is CompatMode {
  return (COMPAT_MODES as readonly string[]).includes(value);
}

/** The family sets for the modes asked for, each once, in a fixed order. */
export function compatFamilySets(modes: readonly CompatMode[], context: CompatContext = {}): FamilySet[] {
  const sets: FamilySet[] = [];
  if (modes.includes('dcgm')) sets.push(dcgmFamilySet(context));
  if (modes.includes('hami')) sets.push(hamiFamilySet(context));
  return sets;
}
