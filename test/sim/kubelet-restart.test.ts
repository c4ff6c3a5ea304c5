/**
 * The kubelet simulator's restart that keeps the plugin sockets: only kubelet.sock is replaced, so a
 * plugin test can prove that re-registration follows kubelet.sock alone. Kept apart from
 * src/sim/kubelet.test.ts, which covers the simulator's other behaviour.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { socketId } from '../../src/plugin/socket-id.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A kubelet in a fresh directory and a listening socket standing for a plugin's. */
async function kubeletWithPluginSocket(): Promise<{ kubelet: KubeletSimulator; pluginSocket: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'vgpu-kubelet-restart-'));
  const kubelet = await KubeletSimulator.start({ dir, restartDelayMs: 10 });
  const pluginSocket = join(dir, 'vgpu-gpu.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(pluginSocket, resolve));
  cleanups.push(async () => {
    await kubelet.stop();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });
  return { kubelet, pluginSocket };
}

describe('KubeletSimulator.restart', () => {
  it('keepPluginSockets: replaces kubelet.sock and leaves the plugin sockets in place', async () => {
    const { kubelet, pluginSocket } = await kubeletWithPluginSocket();
    // Identity is inode and change time: a file re-created at once may reuse the inode number.
    const [kubeletBefore, pluginBefore] = [await socketId(kubelet.socketPath), await socketId(pluginSocket)];
    await kubelet.restart({ keepPluginSockets: true });
    expect(await socketId(pluginSocket)).toBe(pluginBefore);
    const kubeletAfter = await socketId(kubelet.socketPath);
    expect(kubeletAfter).not.toBeNull();
    expect(kubeletAfter).not.toBe(kubeletBefore);
  });

  it('by default removes the plugin sockets, as kubelet cleans its directory', async () => {
    const { kubelet, pluginSocket } = await kubeletWithPluginSocket();
    await kubelet.restart();
    expect(existsSync(pluginSocket)).toBe(false);
    expect(await socketId(kubelet.socketPath)).not.toBeNull();
  });
});
