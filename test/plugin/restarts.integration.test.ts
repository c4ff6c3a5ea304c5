/** Kubelet restarts and removed sockets: re-serve and re-register, leaking nothing. */
import { mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePluginNodes } from '../helpers/plugin-node.js';

const start = usePluginNodes();

const GPU = 'nvidia.com/gpu';

async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

describe('kubelet restarts', () => {
  it('re-registers after each of 20 restarts in a row, with no leaked sockets or file descriptors', async () => {
    const running = await start('dgx-a100');
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    // Let the first connections settle before counting descriptors.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const fdsBefore = await openFds();
    // That each restart is followed; how fast is measured by bench/kubelet-restart-latency.mjs.
    for (let i = 1; i <= 20; i++) {
      await kubelet.restart();
      await kubelet.waitFor((s) => s.get(GPU)?.registrations === i + 1 && s.get(GPU)!.devices.length === 8, {
        timeoutMs: 10_000,
        description: `re-registration after restart ${i}`,
      });
    }
    expect((await readdir(running.pluginDir)).sort()).toEqual(['kubelet.sock', 'vgpu-gpu.sock']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await openFds()).toBeLessThanOrEqual(fdsBefore + 4);
    expect(running.logs.filter((l) => l.msg === 'registered with kubelet').length).toBeGreaterThanOrEqual(21);
  });

  it('keeps retrying when serving again really fails, and recovers once it can', async () => {
    const running = await start('single-t4');
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    const socket = path.join(running.pluginDir, 'vgpu-gpu.sock');
    // In one synchronous step (the agent runs in this process): the socket is gone and a directory
    // stands in its place, so every attempt to serve there again fails until it is removed.
    rmSync(socket);
    mkdirSync(socket);
    const failures = () => running.logs.filter((l) => l.msg === 'serving again failed; retrying');
    await expect.poll(() => failures().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(kubelet.resource(GPU)!.registrations).toBe(1);
    rmdirSync(socket);
    await kubelet.waitFor((s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.devices.length === 1, {
      timeoutMs: 10_000,
    });
    // pino logs { err } as an object: the cause is in its message.
    expect((failures()[0]!.err as { message: string }).message).toMatch(/directory/);
    expect(
      failures()
        .slice(0, 2)
        .map((l) => [l.attempt, l.retryInMs]),
    ).toEqual([
      [1, 500],
      [2, 1000],
    ]);
    await expect(kubelet.allocate(GPU, 1)).resolves.toMatchObject({ deviceIds: [expect.any(String)] });
  });

  it('re-serves and re-registers when its own socket is removed', async () => {
    const running = await start('single-t4');
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    await rm(`${running.pluginDir}/vgpu-gpu.sock`);
    await kubelet.waitFor((s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.devices.length === 1, {
      timeoutMs: 10_000,
    });
    await expect(kubelet.allocate(GPU, 1)).resolves.toMatchObject({ deviceIds: [expect.any(String)] });
  });
});
