/**
 * A device list kubelet cannot receive (over its 4 MiB gRPC message limit) is an error the plugin
 * owns up to: logged naming the resource, counted, and readiness says kubelet lacks the list. The
 * server runs on a real socket against the kubelet simulator (whose client has kubelet's limit);
 * the resource behind it is a plain list, so the size does not depend on any config limit.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { KUBELET_MAX_MESSAGE_BYTES } from '../../src/devices/device-list-size.js';
import { type Device, HEALTHY } from '../../src/kubelet-api/proto.js';
import { createLogger } from '../../src/log.js';
import { DevicePluginServer } from '../../src/plugin/device-plugin-server.js';
import { PluginMetrics } from '../../src/plugin/metrics.js';
import type { ResourceHandler } from '../../src/plugin/resource-handler.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';
import { tempDir } from '../helpers/plugin-node.js';

const RESOURCE = 'example.com/gpu';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function devices(count: number): Device[] {
  return Array.from({ length: count }, (_, i) => ({
    ID: `GPU-${String(i % 8).repeat(8)}-0000-0000-0000-000000000000::${i}`,
    health: HEALTHY,
    topology: { nodes: [{ ID: 0 }] },
  }));
}

/** A resource that is only its list: allocation is not what this test is about. */
function listOnly(list: () => Device[]): ResourceHandler {
  return {
    resourceName: RESOURCE,
    listDevices: list,
    preferredAllocation: () => [],
    allocate: () => Promise.reject(new Error('not used')),
  };
}

async function serve(list: () => Device[]) {
  const { dir, remove } = await tempDir('vgpu-law-');
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const metrics = new PluginMetrics();
  const kubelet = await KubeletSimulator.start({ dir });
  const server = new DevicePluginServer({
    handler: listOnly(list),
    pluginDir: dir,
    logger: createLogger({ level: 'debug', destination: sink }),
    metrics,
    retryInitialMs: 50,
  });
  cleanups.push(async () => {
    await server.stop();
    await kubelet.stop();
    await remove();
  });
  await server.start();
  return { kubelet, server, metrics, logs };
}

describe('ListAndWatch send failures', () => {
  it('a list over kubelet’s message limit is logged, counted and not taken as delivered; a smaller one recovers', async () => {
    let current = devices(80_000);
    const { kubelet, server, metrics, logs } = await serve(() => current);
    await kubelet.waitFor((s) => s.get(RESOURCE)?.registrations === 1);

    await expect
      .poll(() => logs.find((l) => l.msg === 'ListAndWatch: device list not delivered to kubelet'))
      .toMatchObject({ level: 50, resource: RESOURCE, err: { message: expect.stringContaining('exceeds') } });
    await expect.poll(() => server.notReadyReason()).toContain(`limit of ${KUBELET_MAX_MESSAGE_BYTES} bytes`);
    const failures = await metrics.listAndWatchFailures.get();
    expect(failures.values).toEqual([{ labels: { resource: RESOURCE, reason: 'too_large' }, value: 1 }]);

    current = devices(16);
    server.devicesChanged();
    await kubelet.waitFor((s) => s.get(RESOURCE)?.devices.length === 16);
    await expect.poll(() => server.notReadyReason()).toBeNull();
  });
});
