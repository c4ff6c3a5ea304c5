/**
 * Registration with kubelet under faults: kubelet arriving late, many restarts, a restart that
 * leaves the plugin sockets in place, the directory re-created, and a kubelet that never answers Register.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { socketId } from '../../src/plugin/socket-id.js';
import { usePluginNodes } from '../helpers/plugin-node.js';
import { startSilentKubelet } from '../helpers/silent-kubelet.js';

const start = usePluginNodes();
const GPU = 'nvidia.com/gpu';

/** Resolves with the winner's label: an outcome against a deliberately long timer. */
function settlesBefore<T>(outcome: Promise<T>, ms: number): Promise<'outcome' | 'timer'> {
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<'timer'>((resolve) => {
    timer = setTimeout(() => resolve('timer'), ms);
  });
  return Promise.race([outcome.then(() => 'outcome' as const), elapsed]).finally(() => clearTimeout(timer));
}

describe('registration', () => {
  it('registers as soon as kubelet appears after failed attempts, not after the retry backoff', async () => {
    const RETRY_MS = 30_000;
    const pluginNode = await start('single-t4', {
      kubeletAbsent: true,
      tuning: { retryInitialMs: RETRY_MS, retryMaxMs: RETRY_MS },
    });
    // The first attempt failed: the plugin now waits out a 30 s backoff.
    await expect
      .poll(() => pluginNode.logs.some((l) => l.msg === 'registration with kubelet failed; retrying'))
      .toBe(true);
    const kubelet = await pluginNode.startKubelet();
    const registered = kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1, { timeoutMs: RETRY_MS * 2 });
    expect(await settlesBefore(registered, RETRY_MS / 2)).toBe('outcome');
    expect(kubelet.registerCalls(GPU)).toBe(1);
  });

  it('sends exactly one Register per kubelet restart, over 30 restarts', async () => {
    const { kubelet } = await start('single-t4');
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    for (let i = 1; i <= 30; i++) {
      await kubelet.restart({ delayMs: i % 3 === 0 ? 0 : 20 });
      await kubelet.waitFor((s) => s.get(GPU)?.registrations === i + 1 && s.get(GPU)!.devices.length === 1, {
        timeoutMs: 10_000,
        description: `re-registration after restart ${i}`,
      });
    }
    // Late retries would show up here.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(kubelet.registerCalls(GPU)).toBe(31);
  });

  it('re-registers through kubelet.sock alone when kubelet comes back without clearing the plugin sockets', async () => {
    const running = await start('single-t4');
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    const ownSocket = path.join(running.pluginDir, 'vgpu-gpu.sock');
    const socketBefore = await socketId(ownSocket);
    const kubeletBefore = await socketId(kubelet.socketPath);
    await kubelet.restart({ keepPluginSockets: true });
    expect(await socketId(kubelet.socketPath)).not.toBe(kubeletBefore);
    await kubelet.waitFor(
      (s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.connected && s.get(GPU)!.devices.length === 1,
      { timeoutMs: 10_000, description: 're-registration after a restart that kept the plugin socket' },
    );
    // The socket was never removed: only the new kubelet.sock can have told the plugin.
    expect(await socketId(ownSocket)).toBe(socketBefore);
    expect(kubelet.registerCalls(GPU)).toBe(2);
    await expect(kubelet.allocate(GPU, 1)).resolves.toMatchObject({ deviceIds: [expect.any(String)] });
  });

  it('sends one Register after the directory is deleted and re-created with kubelet, and none later', async () => {
    const running = await start('single-t4');
    const { kubelet, agent } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    await rm(running.pluginDir, { recursive: true, force: true });
    await expect.poll(() => agent.manager.ready).toBe(false);
    // Failed attempts to serve in the missing directory must not come back as a second Register.
    await new Promise((resolve) => setTimeout(resolve, 700));
    await mkdir(running.pluginDir);
    await kubelet.restart();
    await kubelet.waitFor((s) => s.get(GPU)?.registrations === 2 && s.get(GPU)!.devices.length === 1, {
      timeoutMs: 10_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(kubelet.registerCalls(GPU)).toBe(2);
  });

  it('stop() cancels a Register kubelet never answers instead of waiting for its deadline', async () => {
    const DEADLINE_MS = 60_000;
    const pluginNode = await start('single-t4', {
      kubeletAbsent: true,
      tuning: { registerTimeoutMs: DEADLINE_MS },
    });
    const kubelet = await startSilentKubelet(pluginNode.pluginDir);
    try {
      await expect.poll(() => kubelet.calls, { timeout: 10_000 }).toBe(1);
      expect(await settlesBefore(pluginNode.agent.manager.stop(), DEADLINE_MS / 2)).toBe('outcome');
      // The call in flight was cancelled on kubelet's side, not left to run out its 60 s.
      await expect.poll(() => kubelet.cancelled, { timeout: 10_000 }).toBe(1);
    } finally {
      kubelet.stop();
    }
  });
});
