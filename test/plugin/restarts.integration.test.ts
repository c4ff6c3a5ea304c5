/** Kubelet restarts and removed sockets: re-serve and re-register, leaking nothing. */
import { readdir, rm } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { DevicePluginServer } from '../../src/plugin/device-plugin-server.js';
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
    for (let i = 1; i <= 20; i++) {
      const started = performance.now();
      await kubelet.restart();
      await kubelet.waitFor((s) => s.get(GPU)?.registrations === i + 1 && s.get(GPU)!.devices.length === 8, {
        timeoutMs: 5000,
        description: `re-registration after restart ${i}`,
      });
      // The contract is "within 1 s" of kubelet.sock coming back.
      expect(performance.now() - started).toBeLessThan(1000);
    }
    expect((await readdir(running.pluginDir)).sort()).toEqual(['kubelet.sock', 'vgpu-gpu.sock']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await openFds()).toBeLessThanOrEqual(fdsBefore + 4);
    expect(running.logs.filter((l) => l.msg === 'registered with kubelet').length).toBeGreaterThanOrEqual(21);
  });

  it('keeps retrying when serving again fails, and recovers once it can', async () => {
    const running = await start('single-t4');
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    // The next two attempts to serve again fail (as a transient bind error would); the third is real.
    const restart = vi.spyOn(DevicePluginServer.prototype, 'restart');
    restart
      .mockRejectedValueOnce(new Error('cannot serve: EADDRINUSE'))
      .mockRejectedValueOnce(new Error('cannot serve: EADDRINUSE'));
    try {
      await rm(`${running.pluginDir}/vgpu-gpu.sock`);
      await kubelet.waitFor((s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.devices.length === 1, {
        timeoutMs: 8000,
      });
    } finally {
      restart.mockRestore();
    }
    const failures = running.logs.filter((l) => l.msg === 'serving again failed; retrying');
    expect(failures.map((l) => [l.attempt, l.retryInMs])).toEqual([
      [1, 500],
      [2, 1000],
    ]);
  });

  it('re-serves and re-registers when its own socket is removed', async () => {
    const running = await start('single-t4');
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    await rm(`${running.pluginDir}/vgpu-gpu.sock`);
    await kubelet.waitFor((s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.devices.length === 1, {
      timeoutMs: 2000,
    });
    await expect(kubelet.allocate(GPU, 1)).resolves.toMatchObject({ deviceIds: [expect.any(String)] });
  });
});
