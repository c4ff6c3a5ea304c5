/**
 * Connections to a plugin socket that break HTTP/2 must not cost a file descriptor each for good.
 * Node's http2 leaves a session open after some protocol errors (it stops reading and never closes the
 * socket, even once the peer has gone); the server's idle timeout reaps them.
 */
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePluginNodes } from '../helpers/plugin-node.js';

const start = usePluginNodes();
const GPU = 'nvidia.com/gpu';
const IDLE_MS = 300;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

const EMPTY_SETTINGS = frame(4, 0, 0, Buffer.alloc(0));
/** Both end the connection with a GOAWAY, after which Node never closes the socket. */
const MALFORMED = {
  'undecodable header block': Buffer.concat([
    PREFACE,
    EMPTY_SETTINGS,
    frame(1, 0x5, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])),
  ]),
  'frame over the size limit': Buffer.concat([PREFACE, EMPTY_SETTINGS, frame(0, 0, 1, Buffer.alloc(20_000))]),
};

async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

/** Connects, writes `bytes`, and closes from our side. */
function sendAndClose(socket: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const connection = net.connect(socket, () => {
      connection.write(bytes, () => {
        connection.destroy();
        resolve();
      });
    });
    connection.on('error', () => resolve());
  });
}

describe('malformed HTTP/2 connections', () => {
  it('300 of them leave no file descriptors behind, and kubelet keeps its connection', async () => {
    const running = await start('single-t4', { tuning: { connectionIdleMs: IDLE_MS } });
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    // Let the first connections settle before counting descriptors.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const baseline = await openFds();
    const socket = path.join(running.pluginDir, 'vgpu-gpu.sock');
    for (let i = 0; i < 300; i++) await sendAndClose(socket, Object.values(MALFORMED)[i % 2]!);

    await expect.poll(openFds, { timeout: 10_000, interval: 200 }).toBeLessThanOrEqual(baseline + 2);
    // Kubelet's connection carries ListAndWatch: many idle periods later it is still the same one.
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 3));
    expect(kubelet.resource(GPU)).toMatchObject({ connected: true, registrations: 1 });
    await expect(kubelet.allocate(GPU, 1)).resolves.toMatchObject({ deviceIds: [expect.any(String)] });
  });
});
