/**
 * GetPreferredAllocation policies: pure functions of the advertised devices and kubelet's request.
 * Topology comes from the inventory (read from NVML once), so a call never touches NVML and an
 * unknown or lost GPU can only lower a score, never fail the call. Each policy's work is bounded
 * (an exhaustive search only under a budget, greedy or in-order beyond it): a call runs on the event
 * loop, so no request may stall it. Requests are checked against the resource first
 * (preferred-request.ts).
 */
import type { Gpu, Inventory } from '../devices/inventory-types.js';
import type { AdvertisedDevice } from '../devices/resource-types.js';
import { TopologyLevel } from '../nvml/codes.js';

export type SharedAllocationPolicy = 'distributed' | 'packed';

export interface PreferredAllocationRequest {
  available: readonly string[];
  mustInclude: readonly string[];
  size: number;
  /**
   * Set by checkPreferredRequest: the IDs are unique, must-include ones are all offered and no more
   * than `size`, so the policies skip their own clean-up pass (a large request is hashed once).
   */
  checked?: true;
}

/** Above this many candidate sets, fall back from exhaustive search to a greedy one. */
const MAX_EXHAUSTIVE_SETS = 20_000;
/**
 * Pair scores an exhaustive search may add up (sets × pairs per set): a few milliseconds. Every
 * node-sized request fits (16 GPUs choose 8: 12,870 sets × 28 pairs); a request for hundreds of
 * devices would not (400 choose 399 is only 400 sets, but of 79,401 pairs each).
 */
const MAX_EXHAUSTIVE_PAIRS = 1_000_000;
/** Pair scores the greedy search may look up (candidates × set size); beyond it, kubelet's order. */
const MAX_GREEDY_PAIRS = 1_000_000;

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

/** Pairwise connectivity scores between GPUs, by UUID; built once per inventory. */
export class TopologyScores {
  private readonly scores = new Map<string, Map<string, number>>();
  /** `a\nb` when a counts NVLinks to b (each GPU counts its own links, so b may disagree) */
  private readonly nvlinked = new Set<string>();

  constructor(gpus: readonly Gpu[]) {
    for (const gpu of gpus) {
      const peers = new Map<string, number>();
      for (const link of gpu.links) {
        peers.set(link.peerUuid, link.nvlinks * 100 + pcieScore(link.pcieLevel));
        if (link.nvlinks > 0) this.nvlinked.add(`${gpu.uuid}\n${link.peerUuid}`);
      }
      this.scores.set(gpu.uuid, peers);
    }
  }

  static of(inventory: Inventory): TopologyScores {
    return new TopologyScores(inventory.gpus);
  }

  /** a's score of its connection to b (0 for a GPU it does not know). */
  pair(a: string, b: string): number {
    return this.scores.get(a)?.get(b) ?? 0;
  }

  /**
   * Both GPUs see NVLinks between them, or neither does. One-sided NVLinks mean the driver reports
   * the links of one end only (a failing link or driver); HAMi's topology score reads that as 0.
   */
  symmetric(a: string, b: string): boolean {
    return this.nvlinked.has(`${a}\n${b}`) === this.nvlinked.has(`${b}\n${a}`);
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
function startingSet(request: PreferredAllocationRequest): {
  chosen: readonly string[];
  candidates: readonly string[];
} {
  if (request.checked) {
    const { available, mustInclude } = request;
    const taken = new Set(mustInclude);
    return { chosen: mustInclude, candidates: available.filter((id) => !taken.has(id)) };
  }
  const offered = new Set(request.available);
  const chosen = [...new Set(request.mustInclude)].filter((id) => offered.has(id)).slice(0, request.size);
  const taken = new Set(chosen);
  return { chosen, candidates: [...offered].filter((id) => !taken.has(id)) };
}

/** n choose k, for the 0 < k ≤ n that preferWholeGpus asks about. */
function binomial(n: number, k: number): number {
  let result = 1;
  for (let i = 1; i <= k; i++) result = (result * (n - k + i)) / i;
  return result;
}

/**
 * Whole GPUs: the set of `size` GPUs with the best NVLink/PCIe connectivity that contains the
 * must-include ones. Exhaustive for node-sized problems, greedy beyond, kubelet's order beyond that.
 * Deterministic: ties go to the earliest IDs in kubelet's order.
 */
export function preferWholeGpus(request: PreferredAllocationRequest, scores: TopologyScores): string[] {
  const { chosen, candidates } = startingSet(request);
  const needed = Math.min(request.size - chosen.length, candidates.length);
  if (needed <= 0) return [...chosen];
  const sets = binomial(candidates.length, needed);
  const pairsPerSet = ((chosen.length + needed) * (chosen.length + needed - 1)) / 2;
  if (sets <= MAX_EXHAUSTIVE_SETS && sets * pairsPerSet <= MAX_EXHAUSTIVE_PAIRS) {
    return [...chosen, ...bestSet(chosen, candidates, needed, scores)];
  }
  if (candidates.length * (chosen.length + needed) <= MAX_GREEDY_PAIRS) {
    return [...chosen, ...greedySet(chosen, candidates, needed, scores)];
  }
  return [...chosen, ...candidates.slice(0, needed)];
}

/** Every `needed`-subset of the candidates, scored with the chosen ones; the first best wins. */
function bestSet(
  chosen: readonly string[],
  candidates: readonly string[],
  needed: number,
  scores: TopologyScores,
): string[] {
  // Every score is ≥ 0, so the first set visited replaces these.
  let best: string[] = [];
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
  return best;
}

/**
 * One candidate at a time, the one best connected to those taken so far (earliest on ties). Each
 * candidate's gain is kept up to date as picks are added: candidates × picks pair lookups in all.
 */
function greedySet(
  chosen: readonly string[],
  candidates: readonly string[],
  needed: number,
  scores: TopologyScores,
): string[] {
  const gain = candidates.map((id) => chosen.reduce((sum, other) => sum + scores.pair(id, other), 0));
  const taken = new Array<boolean>(candidates.length).fill(false);
  const result: string[] = [];
  while (result.length < needed) {
    let bestIndex = -1;
    for (let i = 0; i < candidates.length; i++) {
      if (!taken[i] && (bestIndex < 0 || gain[i]! > gain[bestIndex]!)) bestIndex = i;
    }
    const pickedId = candidates[bestIndex]!;
    taken[bestIndex] = true;
    result.push(pickedId);
    // Taken candidates' gains are never read again: updating them too keeps the loop plain.
    for (let i = 0; i < candidates.length; i++) gain[i] = gain[i]! + scores.pair(candidates[i]!, pickedId);
  }
  return result;
}

/**
 * Replicas and slices: spread over GPUs (`distributed`: fewest in use first) or fill one GPU
 * before the next (`packed`: most in use first). "In use" is derived from kubelet's request: the
 * shares of a GPU that kubelet does not offer are taken. A multi-share request goes to a single GPU
 * when one has room for all of it (split slices add up their memory and compute that way).
 * Work: one pass over the devices, then one pass over the GPUs per share picked.
 */
export function preferShares(
  request: PreferredAllocationRequest,
  devices: ReadonlyMap<string, AdvertisedDevice>,
  policy: SharedAllocationPolicy,
): string[] {
  const { chosen, candidates } = startingSet(request);
  // needed ≤ 0 (must-include fills the request): neither search below picks anything.
  const needed = request.size - chosen.length;
  const gpus = sharesPerGpu(devices, chosen, candidates);
  const chosenTargets = new Set(chosen.map((id) => devices.get(id)?.target.uuid));
  const single = needed > 1 ? singleGpuFor(gpus, chosenTargets, needed, policy) : undefined;
  if (single) return [...chosen, ...single.free.slice(0, needed)];
  return [...chosen, ...spread(gpus, needed, policy)];
}

/** One GPU (or MIG device) as preferShares sees it. */
interface GpuShares {
  uuid: string;
  /** shares kubelet offers and nobody chose yet, in kubelet's order; `next` is the first not yet picked */
  free: string[];
  next: number;
  /** shares in use by other containers (ours that kubelet does not offer) plus those this container takes */
  load: number;
  /** shares this container takes */
  picked: number;
}

function sharesPerGpu(
  devices: ReadonlyMap<string, AdvertisedDevice>,
  chosen: readonly string[],
  candidates: readonly string[],
): GpuShares[] {
  const byTarget = new Map<string, GpuShares>();
  for (const { target } of devices.values()) {
    const gpu = byTarget.get(target.uuid);
    if (gpu) gpu.load++;
    else byTarget.set(target.uuid, { uuid: target.uuid, free: [], next: 0, load: 1, picked: 0 });
  }
  const gpuOf = (id: string) => {
    const target = devices.get(id)?.target;
    return target && byTarget.get(target.uuid);
  };
  // Offered, so not in use elsewhere; an ID that is not ours (any more) is never offered back.
  for (const id of chosen) {
    const gpu = gpuOf(id);
    if (gpu) gpu.picked++;
  }
  for (const id of candidates) {
    const gpu = gpuOf(id);
    if (!gpu) continue;
    gpu.load--;
    gpu.free.push(id);
  }
  // In UUID order, whatever the order of kubelet's list or the devices: the searches below keep the
  // first of equals, so ties go to the lowest UUID. A GPU with nothing free is never picked.
  return [...byTarget.values()].sort((a, b) => a.uuid.localeCompare(b.uuid));
}

/** All on one GPU: the must-include GPU if it has room, else the best-fitting one (packed: tightest). */
function singleGpuFor(
  gpus: readonly GpuShares[],
  chosenTargets: ReadonlySet<string | undefined>,
  needed: number,
  policy: SharedAllocationPolicy,
): GpuShares | undefined {
  if (chosenTargets.size > 1) return undefined;
  const fits = (gpu: GpuShares) =>
    gpu.free.length >= needed && (chosenTargets.size === 0 || chosenTargets.has(gpu.uuid));
  const first = (a: GpuShares, b: GpuShares) =>
    policy === 'packed' ? a.free.length - b.free.length : b.free.length - a.free.length;
  let best: GpuShares | undefined;
  for (const gpu of gpus) if (fits(gpu) && (best === undefined || first(gpu, best) < 0)) best = gpu;
  return best;
}

/** One share at a time from the GPU the policy ranks first, its load updated after each pick. */
function spread(gpus: readonly GpuShares[], needed: number, policy: SharedAllocationPolicy): string[] {
  const first = (a: GpuShares, b: GpuShares) =>
    (policy === 'packed' ? b.load - a.load : a.load - b.load) || a.picked - b.picked;
  const result: string[] = [];
  while (result.length < needed) {
    let best: GpuShares | undefined;
    for (const gpu of gpus) {
      if (gpu.next < gpu.free.length && (best === undefined || first(gpu, best) < 0)) best = gpu;
    }
    if (!best) break;
    result.push(best.free[best.next++]!);
    best.load++;
    best.picked++;
  }
  return result;
}

/** Anything else (MIG devices): must-include, then kubelet's order. */
export function preferInOrder(request: PreferredAllocationRequest): string[] {
  const { chosen, candidates } = startingSet(request);
  return [...chosen, ...candidates.slice(0, Math.max(0, request.size - chosen.length))];
}
