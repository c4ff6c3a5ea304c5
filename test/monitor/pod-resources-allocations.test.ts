/**
 * The monitor's allocations from PodResources, read over real gRPC on the Unix socket of the kubelet
 * simulator, which admits containers through the plugin running on the mock node: whole GPUs,
 * time-slicing replicas (renamed resource), split slices and time-sliced MIG devices all map back to
 * the GPU or MIG device behind them; the last good answer survives a kubelet outage (logged once);
 * the background poll picks up new allocations.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/log.js';
import type { ContainerNames } from '../../src/monitor/containers.js';
import { PodResourcesAllocations } from '../../src/monitor/pod-resources-allocations.js';
import { tempDir, usePluginNodes } from '../helpers/plugin-node.js';

const start = usePluginNodes();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function collectingLogger(): { logger: Logger; lines: { level: number; msg: string; err?: string }[] } {
  const lines: { level: number; msg: string; err?: string }[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

async function source(
  socketPath: string,
  options: { intervalMs?: number; logger?: Logger; knownUuids?: ReadonlySet<string> } = {},
) {
  const started = await PodResourcesAllocations.start({
    socketPath,
    knownUuids: options.knownUuids,
    intervalMs: options.intervalMs ?? 60_000,
    timeoutMs: 2000,
    logger: options.logger ?? collectingLogger().logger,
  });
  cleanups.push(() => started.stop());
  return started;
}

const uuidOf = (id: string) => id.split('::')[0]!;
const names = (pod: string, container: string): ContainerNames => ({ namespace: 'ml', pod, container });

describe('PodResourcesAllocations', () => {
  it('maps whole GPUs and time-slicing replicas of a renamed resource to their GPUs, by container name', async () => {
    const { kubelet, podResourcesSocket } = await start('dgx-a100', {
      podResources: true,
      config: `
sharing:
  timeSlicing:
    resources: [{name: nvidia.com/gpu, rename: nvidia.com/gpu.shared, replicas: 4, devices: [0, 1]}]
`,
    });
    await kubelet.waitFor(
      (s) =>
        s.get('nvidia.com/gpu.shared')?.devices.length === 8 && s.get('nvidia.com/gpu')?.devices.length === 6,
    );
    const trainer = names('train-a', 'trainer');
    const shared = await kubelet.allocate('nvidia.com/gpu.shared', 2, { container: trainer });
    const whole = await kubelet.allocate('nvidia.com/gpu', 2, { container: trainer });
    const server = await kubelet.allocate('nvidia.com/gpu', 1, { container: names('infer-b', 'server') });
    expect(shared.deviceIds.every((id) => /::\d$/.test(id))).toBe(true);

    const allocations = await source(podResourcesSocket!);
    expect(allocations.synced).toBe(true);
    expect(allocations.devicesOf(trainer)).toEqual(
      new Set([...shared.deviceIds.map(uuidOf), ...whole.deviceIds]),
    );
    expect(allocations.devicesOf(names('infer-b', 'server'))).toEqual(new Set(server.deviceIds));
    expect(allocations.devicesOf(names('infer-b', 'absent'))).toBeUndefined();
    expect(allocations.allocations()).toEqual([
      ...shared.deviceIds.map((id) => ({
        names: trainer,
        resourceName: 'nvidia.com/gpu.shared',
        deviceId: id,
        uuid: uuidOf(id),
      })),
      ...whole.deviceIds.map((id) => ({
        names: trainer,
        resourceName: 'nvidia.com/gpu',
        deviceId: id,
        uuid: id,
      })),
      {
        names: names('infer-b', 'server'),
        resourceName: 'nvidia.com/gpu',
        deviceId: server.deviceIds[0],
        uuid: server.deviceIds[0],
      },
    ]);
  });

  it('maps split slices to their GPU', async () => {
    const hook = await tempDir('vgpu-hook-');
    cleanups.push(hook.remove);
    await writeFile(path.join(hook.dir, 'libvgpu.so'), '');
    await writeFile(path.join(hook.dir, 'ld.so.preload'), `${hook.dir}/libvgpu.so\n`);
    const { kubelet, podResourcesSocket } = await start('single-t4', {
      podResources: true,
      config: `
sharing:
  split:
    hookPath: ${hook.dir}
    resources: [{name: nvidia.com/gpu, count: 4}]
`,
    });
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 4);
    const gpu = kubelet.resource('nvidia.com/gpu')!.devices[0]!.ID.split('::')[0]!;
    const a = await kubelet.allocate('nvidia.com/gpu', 1, { container: names('a', 'main') });
    const b = await kubelet.allocate('nvidia.com/gpu', 2, { container: names('b', 'main') });

    const allocations = await source(podResourcesSocket!);
    expect(allocations.devicesOf(names('a', 'main'))).toEqual(new Set([gpu]));
    expect(allocations.devicesOf(names('b', 'main'))).toEqual(new Set([gpu]));
    expect(allocations.allocations().map((x) => [x.names.pod, x.deviceId, x.uuid])).toEqual([
      ['a', a.deviceIds[0], gpu],
      ['b', b.deviceIds[0], gpu],
      ['b', b.deviceIds[1], gpu],
    ]);

    // Told the node's devices, it ignores IDs naming any other: the containers are known, with none.
    const elsewhere = await source(podResourcesSocket!, { knownUuids: new Set(['GPU-of-another-node']) });
    expect(elsewhere.devicesOf(names('a', 'main'))).toEqual(new Set());
    expect(elsewhere.allocations()).toEqual([]);
  });

  it('maps time-sliced MIG devices to the MIG device, not its GPU', async () => {
    const { kubelet, node, podResourcesSocket } = await start('mixed-mig', {
      podResources: true,
      config: `
flags: {migStrategy: mixed}
sharing: {timeSlicing: {resources: [{name: nvidia.com/mig-2g.10gb, replicas: 3}]}}
`,
    });
    await kubelet.waitFor((s) => s.get('nvidia.com/mig-2g.10gb')?.devices.length === 6);
    const { deviceIds } = await kubelet.allocate('nvidia.com/mig-2g.10gb', 1, {
      container: names('m', 'main'),
    });
    const migUuids = node.state.devices[0]!.migDevices!.map((m) => m.uuid);
    expect(migUuids).toContain(uuidOf(deviceIds[0]!));

    const allocations = await source(podResourcesSocket!);
    expect(allocations.devicesOf(names('m', 'main'))).toEqual(new Set([uuidOf(deviceIds[0]!)]));
  });

  it('keeps the last answer while kubelet is away, logging once, and says when it answers again', async () => {
    const { kubelet, podResourcesSocket } = await start('single-t4', { podResources: true });
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 1);
    const { deviceIds } = await kubelet.allocate('nvidia.com/gpu', 1, { container: names('a', 'main') });
    const { logger, lines } = collectingLogger();
    const allocations = await source(podResourcesSocket!, { logger });
    expect(allocations.devicesOf(names('a', 'main'))).toEqual(new Set(deviceIds));

    const restarted = kubelet.restart({ delayMs: 3000 });
    await expect.poll(() => allocations.poll(), { timeout: 10_000 }).toBe(false);
    expect(await allocations.poll()).toBe(false);
    expect(allocations.devicesOf(names('a', 'main'))).toEqual(new Set(deviceIds));
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([
      'cannot list PodResources from kubelet; keeping its last answer (next log when it recovers)',
    ]);
    expect(warnings[0]!.err).toBeTruthy();

    await restarted;
    await expect.poll(() => allocations.poll(), { timeout: 10_000 }).toBe(true);
    expect(lines.filter((l) => l.msg === 'PodResources answers again')).toHaveLength(1);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
  });

  it('starts without kubelet (allocations unknown), and polls in the background on its interval', async () => {
    const { kubelet, podResourcesSocket } = await start('single-t4', { podResources: true });
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 1);
    const { logger, lines } = collectingLogger();
    const absent = await source(`${podResourcesSocket}.absent`, { logger });
    expect(absent.synced).toBe(false);
    expect(absent.devicesOf(names('a', 'main'))).toBeUndefined();
    expect(absent.allocations()).toEqual([]);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      'cannot list PodResources from kubelet; allocations unknown until it answers (next log when it recovers)',
    ]);

    const polled = await source(podResourcesSocket!, { intervalMs: 50 });
    expect(polled.devicesOf(names('a', 'main'))).toBeUndefined();
    const { deviceIds } = await kubelet.allocate('nvidia.com/gpu', 1, { container: names('a', 'main') });
    await expect
      .poll(() => polled.devicesOf(names('a', 'main')), { timeout: 10_000 })
      .toEqual(new Set(deviceIds));
  });
});
