/**
 * HAMi's GPU pair scores (`hami.io/node-nvidia-score`) on simulated nodes, read through the real koffi
 * binding on the mock NVML. The expected values follow HAMi v2.10's rules
 * (pkg/device/nvidia/calculate_score.go and links.go): a pair scores 100 per NVLink between the two
 * GPUs plus 60/50/40/30/20/10 for a common PCIe ancestor on the board / one switch / several switches /
 * host bridge / NUMA node / across CPUs; a pair where only one GPU reports NVLinks to the other scores
 * 0 both ways. The mock reports "one switch" for GPUs with the same `pcieSwitch`, "NUMA node" for the
 * same `numaNode`, else "across CPUs" (native/mock-nvml/mock_nvml.c), and one NVLink per entry of a
 * GPU's `nvlinkPeers`.
 */
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { buildInventory } from '../../src/devices/inventory.js';
import { encodeScoreAnnotation } from '../../src/hami/protocol.js';
import { hamiTopologyScores } from '../../src/hami/topology-score.js';
import { mockNodePath } from '../../src/paths.js';
import { TopologyScores } from '../../src/plugin/preferred-allocation.js';
import type { MockNvmlState } from '../../src/sim/mock-node.js';
import { fixtureNode } from '../helpers/fixture-nodes.js';
import { type OpenedMock, openMockNvml } from '../helpers/mock-nvml.js';

let opened: OpenedMock | undefined;
afterEach(async () => {
  await opened?.close();
  opened = undefined;
});

/** The node's GPUs (index order) and their HAMi scores, through the binding. */
async function scoresOn(state: MockNvmlState) {
  opened = await openMockNvml(state);
  const inventory = await buildInventory(opened.nvml, opened.node.hostPaths);
  const uuids = inventory.gpus.map((gpu) => gpu.uuid);
  return { uuids, ...hamiTopologyScores(uuids, TopologyScores.of(inventory)) };
}

const SAME_SWITCH = 50;
const SAME_NUMA = 20;
const ACROSS_CPUS = 10;

describe('HAMi topology scores', () => {
  it('dgx-a100: 100 per NVLink plus the PCIe closeness, for every ordered pair', async () => {
    const state = JSON.parse(await readFile(mockNodePath('dgx-a100'), 'utf8')) as MockNvmlState;
    // NVLinks between GPU i and j, counted from dgx-a100.json's nvlinkPeers (the same from either end).
    const NVLINKS = [
      [0, 2, 2, 1, 2, 1, 2, 2],
      [2, 0, 2, 2, 1, 2, 1, 2],
      [2, 2, 0, 2, 2, 1, 2, 1],
      [1, 2, 2, 0, 2, 2, 1, 2],
      [2, 1, 2, 2, 0, 2, 2, 1],
      [1, 2, 1, 2, 2, 0, 2, 2],
      [2, 1, 2, 1, 2, 2, 0, 2],
      [2, 2, 1, 2, 1, 2, 2, 0],
    ];
    // pcieSwitch is i / 2 (GPUs 0-1, 2-3, 4-5, 6-7 pair up), numaNode is i / 4.
    const pcie = (i: number, j: number) =>
      i >> 1 === j >> 1 ? SAME_SWITCH : i >> 2 === j >> 2 ? SAME_NUMA : ACROSS_CPUS;
    const { uuids, scores, asymmetric } = await scoresOn(state);

    expect(asymmetric).toEqual([]);
    expect(scores.map((s) => s.uuid)).toEqual(uuids);
    for (const [i, { score }] of scores.entries()) {
      const expected = Object.fromEntries(
        uuids.flatMap((peer, j) => (i === j ? [] : [[peer, NVLINKS[i]![j]! * 100 + pcie(i, j)]])),
      );
      expect(score).toEqual(expected);
    }
    // GPU 0's row spelled out: 1 same switch, 2-3 same NUMA node, 4-7 across CPUs.
    expect(uuids.slice(1).map((peer) => scores[0]!.score[peer])).toEqual([250, 220, 120, 210, 110, 210, 210]);
  });

  it('nvlink-across-numa: the NVLink pairs (0,2) and (1,3) outscore the PCIe neighbours; exact JSON', async () => {
    const state = await fixtureNode('nvlink-across-numa');
    const { uuids, scores } = await scoresOn(state);
    const [g0, g1, g2, g3] = uuids as [string, string, string, string];
    // 4 NVLinks across CPUs: 400 + 10; same switch, no NVLink: 50; neither: 10.
    expect(encodeScoreAnnotation(scores)).toBe(
      `[{"uuid":"${g0}","score":{"${g1}":50,"${g2}":410,"${g3}":10}},` +
        `{"uuid":"${g1}","score":{"${g0}":50,"${g2}":10,"${g3}":410}},` +
        `{"uuid":"${g2}","score":{"${g0}":410,"${g1}":10,"${g3}":50}},` +
        `{"uuid":"${g3}","score":{"${g0}":10,"${g1}":410,"${g2}":50}}]`,
    );
  });

  it('a pair where only one GPU reports NVLinks to the other scores 0 both ways (HAMi: asymmetric)', async () => {
    const state = await fixtureNode('nvlink-across-numa');
    // GPU 2's driver reports no NVLinks (its links are not supported any more); GPU 0 still counts 4.
    state.devices[2]!.failures = { nvmlDeviceGetNvLinkState: 'NOT_SUPPORTED' };
    const { uuids, scores, asymmetric } = await scoresOn(state);
    const [g0, g1, g2, g3] = uuids as [string, string, string, string];
    expect(asymmetric).toEqual([[g0, g2]]);
    expect(scores[0]!.score).toEqual({ [g1]: 50, [g2]: 0, [g3]: 10 });
    expect(scores[2]!.score).toEqual({ [g0]: 0, [g1]: 10, [g3]: 50 });
    expect(scores[1]!.score).toEqual({ [g0]: 50, [g2]: 10, [g3]: 410 });
  });

  it('only the registered GPUs, in register order; one GPU alone gets an empty score map', async () => {
    const state = await fixtureNode('nvlink-across-numa');
    opened = await openMockNvml(state);
    const topology = TopologyScores.of(await buildInventory(opened.nvml, opened.node.hostPaths));
    const [g0, , g2, g3] = state.devices.map((d) => d.uuid) as [string, string, string, string];
    expect(hamiTopologyScores([g3, g0], topology).scores).toEqual([
      { uuid: g3, score: { [g0]: 10 } },
      { uuid: g0, score: { [g3]: 10 } },
    ]);
    expect(encodeScoreAnnotation(hamiTopologyScores([g2], topology).scores)).toBe(
      `[{"uuid":"${g2}","score":{}}]`,
    );
    expect(encodeScoreAnnotation(hamiTopologyScores([], topology).scores)).toBe('[]');
  });
});
