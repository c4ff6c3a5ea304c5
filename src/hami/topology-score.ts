/**
 * HAMi's GPU pair scores (`hami.io/node-nvidia-score`, written when `sharing.hami.topologyScore` is
 * on, as HAMi's plugin does with `ENABLE_TOPOLOGY_SCORE=true`). The rules are HAMi v2.10's
 * (pkg/device/nvidia/calculate_score.go, links.go): every registered GPU, in register order, scores
 * every other one; a pair's score is 100 per NVLink plus its PCIe closeness (60 same board, 50 one
 * switch, 40 several switches, 30 host bridge, 20 same NUMA node, 10 across CPUs), which is the pair
 * score preferred allocation already uses (TopologyScores), so it is not computed twice. HAMi adds
 * one rule: a pair whose two GPUs disagree on having NVLinks to each other scores 0 both ways.
 */
import type { HamiSettings } from '../config/schema.js';
import type { TopologyScores } from '../plugin/preferred-allocation.js';
import type { GpuPairScores, RegisteredGpu } from './protocol.js';

export interface HamiTopologyScores {
  scores: GpuPairScores[];
  /** pairs scored 0 because only one end reports NVLinks to the other (HAMi warns on the node) */
  asymmetric: [string, string][];
}

/** The score annotation's entries for the registered GPUs (`uuids` in register order). */
export function hamiTopologyScores(uuids: readonly string[], topology: TopologyScores): HamiTopologyScores {
  const asymmetric: [string, string][] = [];
  const scores = uuids.map((uuid, i): GpuPairScores => {
    const score: Record<string, number> = {};
    uuids.forEach((peer, j) => {
      if (i === j) return;
      const symmetric = topology.symmetric(uuid, peer);
      if (!symmetric && i < j) asymmetric.push([uuid, peer]);
      score[peer] = symmetric ? topology.pair(uuid, peer) : 0;
    });
    return { uuid, score };
  });
  return { scores, asymmetric };
}

/** The scores of the registered GPUs when `topologyScore` is on; undefined (nothing to write) when off. */
export function topologyScoresFor(
  hami: HamiSettings,
  gpus: readonly RegisteredGpu[],
  topology: TopologyScores,
): HamiTopologyScores | undefined {
  if (!hami.topologyScore) return undefined;
  return hamiTopologyScores(
    gpus.map((gpu) => gpu.id),
    topology,
  );
}
