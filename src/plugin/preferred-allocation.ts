/**
 * GetPreferredAllocation policies: pure functions of the advertised devices and kubelet's request.
 * Topology comes from the inventory (read from NVML once), so a call never touches NVML and an
 * unknown or lost GPU can only lower a score, never fail the call.
 */
import type { Gpu, Inventory } from '../devices/inventory-types.js';
import type { AdvertisedDevice } from '../devices/resource-types.js';
import { TopologyLevel } from '../nvml/codes.js';

export type SharedAllocationPolicy = 'distributed' | 'packed';

export interface PreferredAllocationRequest {
  available: readonly string[];
  mustInclude: readonly string[];
  size: number;
}

/** Above this many candidate sets, fall back from exhaustive search to a greedy one. */
const MAX_EXHAUSTIVE_SETS = 20_000;

/** Per pair of GPUs: 100 per NVLink, plus the PCIe/CPU closeness (NVIDIA's gpuallocator weights). */
function pcieScore(level: number): number {
  switch (level) {
    case TopologyLevel.INTERNAL:
      return 60;
    case TopologyLevel.SINGLE:
      return 50;
    case TopologyLevel.MULTIPLE:
      return 40;
    case TopologyLevel.HOSTBRIDGE:
      return 30;
    case TopologyLevel.NODE:
      return 20;
    default:
      return 10;
  }
}

/** Pairwise connectivity scores between GPUs, keyed `uuidA|uuidB`; built once per inventory. */
export class TopologyScores {
  private readonly scores = new Map<string, number>();

  constructor(gpus: readonly Gpu[]) {
    for (const gpu of gpus) {
      for (const link of gpu.links) {
        this.scores.set(`${gpu.uuid}|${link.peerUuid}`, link.nvlinks * 100 + pcieScore(link.pcieLevel));
      }
    }
  }

  static of(inventory: Inventory): TopologyScores {
    return new TopologyScores(inventory.gpus);
  }

  pair(a: string, b: string): number {
    return this.scores.get(`${a}|${b}`) ?? 0;
  }

  setScore(uuids: readonly string[]): number {
    let total = 0;
    for (let i = 0; i < uuids.length; i++) {
      for (let j = i + 1; j < uuids.length; j++) total += this.pair(uuids[i]!, uuids[j]!);
    }
    return total;
  }
}

/** Kubelet's must-include first (deduped, only those it also offers), then fill up to size. */
function startingSet(request: PreferredAllocationRequest): { chosen: string[]; candidates: string[] } {
  const offered = new Set(request.available);
  const chosen = [...new Set(request.mustInclude)].filter((id) => offered.has(id)).slice(0, request.size);
  const taken = new Set(chosen);
  return { chosen, candidates: [...offered].filter((id) => !taken.has(id)) };
}

function binomial(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let result = 1;
  for (let i = 1; i <= k; i++) result = (result * (n - k + i)) / i;
  return result;
}

/**
 * Whole GPUs: the set of `size` GPUs with the best NVLink/PCIe connectivity that contains the
 * must-include ones. Exhaustive for node-sized problems, greedy beyond. Deterministic: ties go to
 * the earliest IDs in kubelet's order.
 */
export function preferWholeGpus(request: PreferredAllocationRequest, scores: TopologyScores): string[] {
  const { chosen, candidates } = startingSet(request);
  const needed = Math.min(request.size - chosen.length, candidates.length);
  if (needed <= 0) return chosen;
  if (binomial(candidates.length, needed) <= MAX_EXHAUSTIVE_SETS) {
    let best: string[] = candidates.slice(0, needed);
    let bestScore = -1;
    const pick: string[] = [];
    const visit = (start: number) => {
      if (pick.length === needed) {
        const score = scores.setScore([...chosen, ...pick]);
        if (score > bestScore) {
          bestScore = score;
          best = [...pick];
        }
        return;
      }
      for (let i = start; i <= candidates.length - (needed - pick.length); i++) {
        pick.push(candidates[i]!);
        visit(i + 1);
        pick.pop();
      }
    };
    visit(0);
    return [...chosen, ...best];
  }
  const result = [...chosen];
  const left = [...candidates];
  while (result.length < request.size && left.length > 0) {
    let bestIndex = 0;
    let bestGain = -1;
    left.forEach((id, i) => {
      const gain = result.reduce((sum, other) => sum + scores.pair(id, other), 0);
      if (gain > bestGain) {
        bestGain = gain;
        bestIndex = i;
      }
    });
    result.push(...left.splice(bestIndex, 1));
  }
  return result;
}

/**
 * Replicas and slices: spread over GPUs (`distributed`: fewest in use first) or fill one GPU
 * before the next (`packed`: most in use first). "In use" is derived from kubelet's request: the
 * shares of a GPU that kubelet does not offer are taken. A multi-share request goes to a single GPU
 * when one has room for all of it (split slices add up their memory and compute that way).
 */
export function preferShares(
  request: PreferredAllocationRequest,
  devices: readonly AdvertisedDevice[],
  policy: SharedAllocationPolicy,
): string[] {
  const { chosen, candidates } = startingSet(request);
  const needed = request.size - chosen.length;
  if (needed <= 0) return chosen;
  const targetOf = new Map(devices.map((d) => [d.id, d.target.uuid]));
  // Per GPU: the shares kubelet offers and nobody chose yet (in kubelet's order), and its load: shares
  // in use by other containers (ours that kubelet does not offer) plus the ones this container takes.
  const free = new Map<string, string[]>();
  const load = new Map<string, number>();
  const picked = new Map<string, number>();
  const add = (map: Map<string, number>, target: string, n: number) =>
    map.set(target, (map.get(target) ?? 0) + n);
  for (const device of devices) add(load, device.target.uuid, 1);
  for (const id of [...chosen, ...candidates]) {
    const target = targetOf.get(id);
    if (target !== undefined) add(load, target, -1); // offered, so not in use elsewhere
  }
  for (const id of chosen) {
    const target = targetOf.get(id);
    if (target === undefined) continue;
    add(load, target, 1);
    add(picked, target, 1);
  }
  for (const id of candidates) {
    const target = targetOf.get(id);
    if (target === undefined) continue; // not ours (any more): never offer it back
    const ids = free.get(target);
    if (ids) ids.push(id);
    else free.set(target, [id]);
  }

  // All on one GPU when possible: the must-include GPU if it has room, else the best-fitting one.
  const single = [...free.entries()]
    .filter(([target, ids]) => ids.length >= needed && chosen.every((id) => targetOf.get(id) === target))
    .sort(
      ([a, ai], [b, bi]) =>
        (policy === 'packed' ? ai.length - bi.length : bi.length - ai.length) || a.localeCompare(b),
    );
  if (needed > 1 && single.length > 0) return [...chosen, ...single[0]![1].slice(0, needed)];

  const result = [...chosen];
  while (result.length < request.size) {
    const options = [...free.entries()].filter(([, ids]) => ids.length > 0);
    if (options.length === 0) break;
    options.sort(([a], [b]) => {
      const byLoad = policy === 'packed' ? load.get(b)! - load.get(a)! : load.get(a)! - load.get(b)!;
      return byLoad || (picked.get(a) ?? 0) - (picked.get(b) ?? 0) || a.localeCompare(b);
    });
    const [target, ids] = options[0]!;
    result.push(ids.shift()!);
    add(load, target, 1);
    add(picked, target, 1);
  }
  return result;
}

/** Anything else (MIG devices): must-include, then kubelet's order. */
export function preferInOrder(request: PreferredAllocationRequest): string[] {
  const { chosen, candidates } = startingSet(request);
  return [...chosen, ...candidates.slice(0, Math.max(0, request.size - chosen.length))];
}
