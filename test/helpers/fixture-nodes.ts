/**
 * Simulated nodes that exist only for tests (test/fixtures/nodes/*.json): each separates something
 * the ready nodes in native/mock-nvml/nodes cannot (NVLink pairs that cross NUMA nodes, GPUs of
 * different sizes). Kept out of that directory because the demo runs on every node there.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MockNvmlState } from '../../src/sim/mock-node.js';

const FIXTURE_NODES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/nodes');

export type FixtureNode = 'nvlink-across-numa' | 'two-sizes';

/** The state of a test-only node, to pass to MockNode.create or startPluginNode. */
export async function fixtureNode(name: FixtureNode): Promise<MockNvmlState> {
  return JSON.parse(await readFile(path.join(FIXTURE_NODES, `${name}.json`), 'utf8')) as MockNvmlState;
}
