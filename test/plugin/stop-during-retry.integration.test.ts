/**
 * Stopping the plugin while serving a resource again keeps failing: the retry that was pending ends
 * with the stop, and nothing serves on the resource's socket afterwards (it used to fire after the
 * stop and bring the server back).
 */
import { existsSync, mkdirSync, rmdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePluginNodes } from '../helpers/plugin-node.js';

const GPU = 'nvidia.com/gpu';
const start = usePluginNodes();

describe('stopping during serve-again retries', () => {
  it('ends the pending retry: no socket comes back after stop', async () => {
    const running = await start('single-t4');
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    const socket = path.join(running.pluginDir, 'vgpu-gpu.sock');
    // In one synchronous step: the socket is gone and a directory stands in its place, so every
    // attempt to serve there again fails until it is removed.
    rmSync(socket);
    mkdirSync(socket);
    const failures = () => running.logs.filter((l) => l.msg === 'serving again failed; retrying');
    await expect.poll(() => failures().length).toBeGreaterThanOrEqual(1);

    // Serving could succeed again from here on; the stop comes before any retry can run.
    rmdirSync(socket);
    const stopped = running.agent.manager.stop();
    const failuresAtStop = failures().length;
    await stopped;
    // The first retry comes 0.5 s after the first failure, the next 1 s later: wait past both.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(existsSync(socket)).toBe(false);
    expect(failures().length).toBe(failuresAtStop);
    expect(kubelet.resource(GPU)!.registrations).toBe(1);
  });
});
