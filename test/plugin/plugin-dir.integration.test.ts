/**
 * The device plugin directory deleted and re-created (kubelet's data wiped, a node reset): the watch
 * follows the new directory, the logs say what is wrong once, and grpc-js writes no text of its own.
 */
import { mkdir, rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { routeGrpcLogs } from '../../src/runtime/grpc-log.js';
import { tempDir, usePluginNodes } from '../helpers/plugin-node.js';

const start = usePluginNodes();
const GPU = 'nvidia.com/gpu';
/** Long enough that only the directory watch can notice anything within a test. */
const NO_POLL = { watchPollIntervalMs: 3_600_000 };

describe('device plugin directory deleted and re-created', () => {
  it('re-arms the directory watch: later kubelet restarts are noticed without the poll', async () => {
    const running = await start('single-t4', { tuning: NO_POLL });
    const { kubelet, agent } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    await rm(running.pluginDir, { recursive: true, force: true });
    await expect.poll(() => agent.manager.ready).toBe(false);
    await mkdir(running.pluginDir);
    await kubelet.restart();
    await kubelet.waitFor((s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.devices.length === 1, {
      timeoutMs: 10_000,
    });
    // Only a watch on the new directory can see these.
    for (const registrations of [3, 4]) {
      await kubelet.restart();
      await kubelet.waitFor(
        (s) => s.get(GPU)?.registrations === registrations && s.get(GPU)!.devices.length === 1,
        { timeoutMs: 10_000, description: `registration ${registrations} through the re-armed watch` },
      );
    }
  });

  it('while it is missing, says so once and never "permission denied"', async () => {
    const running = await start('single-t4');
    const { kubelet, agent, logs } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    const from = logs.length;
    await rm(running.pluginDir, { recursive: true, force: true });
    await expect.poll(() => agent.manager.ready).toBe(false);
    // Let many polls (100 ms each) pass over the missing directory.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const missing = logs.slice(from);
    expect(missing.filter((l) => /directory .*missing|does not exist/.test(String(l.msg)))).toHaveLength(1);
    expect(JSON.stringify(missing)).not.toMatch(/permission denied|EACCES/i);
    expect(missing.filter((l) => (l.level as number) >= 50)).toEqual([]);

    await mkdir(running.pluginDir);
    await kubelet.restart();
    await kubelet.waitFor((s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.devices.length === 1, {
      timeoutMs: 10_000,
    });
    expect(logs.slice(from).some((l) => l.msg === 'device plugin directory is back')).toBe(true);
  });
});

describe('grpc-js logging', () => {
  it('goes through pino as JSON lines', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
        done();
      },
    });
    routeGrpcLogs(createLogger({ level: 'info', destination: sink }));
    const { dir, remove } = await tempDir('vgpu-grpc-log-');
    const server = new grpc.Server();
    try {
      // grpc-js logs a failed bind itself, besides reporting it to the callback.
      const bound = new Promise<Error | null>((resolve) =>
        server.bindAsync(`unix://${dir}/missing/x.sock`, grpc.ServerCredentials.createInsecure(), resolve),
      );
      expect(await bound).toBeInstanceOf(Error);
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 50,
          component: 'grpc-js',
          msg: expect.stringContaining('No address added'),
        }),
      );
    } finally {
      server.forceShutdown();
      await remove();
    }
  });
});
