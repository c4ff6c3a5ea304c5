/**
 * Serves the latest snapshot through a prom-client Registry: one Gauge or Counter per family, whose
 * collect() callback copies the values out of the snapshot at scrape time. A scrape therefore reads
 * memory only (NVML is never called), series of a container that ended simply stop, and the families
 * are computed once per snapshot however many scrapers ask.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { type FamilySet, type MetricFamilies, MONITOR_FAMILY_SET } from './metric-families.js';
import type { MonitorSnapshot } from './snapshot.js';

/**
 * Registers every monitor family on `registry`, and those of each extra set (`--compat`). `latest`
 * gives the snapshot to serve (undefined before the first collection: the families are then empty).
 */
export function registerSnapshotMetrics(
  registry: Registry,
  latest: () => MonitorSnapshot | undefined,
  extraSets: readonly FamilySet[] = [],
): void {
  for (const set of [MONITOR_FAMILY_SET, ...extraSets]) registerSet(registry, latest, set);
}

function registerSet(registry: Registry, latest: () => MonitorSnapshot | undefined, set: FamilySet): void {
  const familiesOf = memoizeLast((snapshot: MonitorSnapshot) => set.families(snapshot));
  const current = (): MetricFamilies | undefined => {
    const snapshot = latest();
    return snapshot && familiesOf(snapshot);
  };
  for (const family of set.definitions) {
    const config = {
      name: family.name,
      help: family.help,
      labelNames: family.labelNames,
      registers: [registry],
    };
    if (family.type === 'counter') {
      new Counter({
        ...config,
        collect() {
          this.reset();
          for (const s of current()?.get(family.name) ?? []) this.inc(s.labels, s.value);
        },
      });
    } else {
      new Gauge({
        ...config,
        collect() {
          this.reset();
          for (const s of current()?.get(family.name) ?? []) this.set(s.labels, s.value);
        },
      });
    }
  }
}

/** Remembers the result for the last argument (snapshots are immutable, so identity is enough). */
function memoizeLast<A extends object, R>(compute: (arg: A) => R): (arg: A) => R {
  let lastArg: A | undefined;
  let lastResult: R | undefined;
  return (arg) => {
    if (arg !== lastArg) {
      lastResult = compute(arg);
      lastArg = arg;
    }
    return lastResult as R;
  };
}
