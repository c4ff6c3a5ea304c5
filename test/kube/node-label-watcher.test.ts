import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpKubeClient } from '../../src/kube/client.js';
import { NodeLabelWatcher } from '../../src/kube/node-label-watcher.js';
import { createLogger, type Logger } from '../../src/log.js';
import { FakeKubeApi } from './fake-api.js';

const LABEL = 'nvidia.com/device-plugin.config';

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

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fakeApi(labels: Record<string, string>, port?: number): Promise<FakeKubeApi> {
  const api = await FakeKubeApi.start('node-a', labels, { port });
  cleanups.push(() => api.close());
  return api;
}

async function watch(
  server: string,
  logger = collectingLogger().logger,
  retry: { initialMs: number; maxMs: number } = { initialMs: 20, maxMs: 100 },
) {
  const changes: [string | undefined, string | undefined][] = [];
  const watcher = await NodeLabelWatcher.start({
    nodeName: 'node-a',
    labelKey: LABEL,
    onChange: (value, previous) => changes.push([value, previous]),
    logger,
    client: new HttpKubeClient({ server, token: async () => 'token-1', requestTimeoutMs: 2000 }),
    retry,
    watchTimeoutSeconds: 60,
  });
  cleanups.push(() => watcher.stop());
  return { watcher, changes };
}

const watchRequests = (api: FakeKubeApi) => api.requests.filter((r) => r.query.watch === 'true');

describe('NodeLabelWatcher', () => {
  it('reads the label at start, then follows changes through a watch of its own node only', async () => {
    const api = await fakeApi({ [LABEL]: 'a100-ts', 'kubernetes.io/hostname': 'node-a' });
    const { watcher, changes } = await watch(api.url);
    expect(watcher.value).toBe('a100-ts');
    expect(watcher.synced).toBe(true);
    await expect.poll(() => api.openWatches).toBe(1);

    api.setLabels({ [LABEL]: 'split-10' });
    await expect.poll(() => changes).toEqual([['split-10', 'a100-ts']]);
    api.setLabels({ [LABEL]: 'split-10', other: 'x' }); // another label: no callback
    api.bookmark();
    api.setLabels({});
    await expect
      .poll(() => changes)
      .toEqual([
        ['split-10', 'a100-ts'],
        [undefined, 'split-10'],
      ]);
    expect(watcher.value).toBeUndefined();

    expect(api.requests[0]).toEqual({
      method: 'GET',
      path: '/api/v1/nodes/node-a',
      query: {},
      authorization: 'Bearer token-1',
    });
    expect(watchRequests(api)).toEqual([
      {
        method: 'GET',
        path: '/api/v1/nodes',
        query: {
          fieldSelector: 'metadata.name=node-a',
          watch: 'true',
          resourceVersion: '100',
          allowWatchBookmarks: 'true',
          timeoutSeconds: '60',
        },
        authorization: 'Bearer token-1',
      },
    ]);
  });

  it('reconnects a dropped watch from the last resourceVersion and gets the change it missed', async () => {
    const api = await fakeApi({ [LABEL]: 'a' });
    const { changes } = await watch(api.url);
    await expect.poll(() => api.openWatches).toBe(1);
    api.setLabels({ [LABEL]: 'b' });
    await expect.poll(() => changes).toEqual([['b', 'a']]);
    const seen = api.resourceVersion;

    api.dropWatches();
    api.setLabels({ [LABEL]: 'c' }); // while no watch is open
    await expect
      .poll(() => changes)
      .toEqual([
        ['b', 'a'],
        ['c', 'b'],
      ]);
    expect(watchRequests(api).map((r) => r.query.resourceVersion)).toEqual(['100', seen]);
    expect(api.requests.filter((r) => r.query.watch !== 'true')).toHaveLength(1); // no second GET
  });

  it('reads the node again when its resourceVersion expired (410 Gone)', async () => {
    const api = await fakeApi({ [LABEL]: 'a' });
    const { changes } = await watch(api.url);
    await expect.poll(() => api.openWatches).toBe(1);
    api.dropWatches();
    api.setLabels({ [LABEL]: 'b' });
    api.compact();
    await expect.poll(() => changes).toEqual([['b', 'a']]);
    expect(api.requests.map((r) => r.path)).toEqual([
      '/api/v1/nodes/node-a',
      '/api/v1/nodes',
      '/api/v1/nodes', // answered with ERROR 410
      '/api/v1/nodes/node-a',
      '/api/v1/nodes',
    ]);
    await expect.poll(() => api.openWatches).toBe(1);
  });

  it('retries with backoff while the API is unreachable, logging once per failure streak', async () => {
    const port = await freePort();
    const { logger, lines } = collectingLogger();
    const { watcher, changes } = await watch(`http://127.0.0.1:${port}`, logger);
    expect(watcher.synced).toBe(false);
    expect(watcher.value).toBeUndefined();
    await expect
      .poll(() => lines.filter((l) => l.msg === 'Kubernetes API still failing').length)
      .toBeGreaterThan(2);
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toBe(
      'cannot read node node-a from the Kubernetes API; retrying with backoff (next log when it recovers)',
    );
    expect(warnings[0]?.err).toContain(`cannot reach http://127.0.0.1:${port}: connect ECONNREFUSED`);

    await fakeApi({ [LABEL]: 'ts-4' }, port);
    await expect.poll(() => changes).toEqual([['ts-4', undefined]]);
    expect(watcher.synced).toBe(true);
    expect(
      lines.some((l) => l.level === 30 && /^Kubernetes API reachable again after \d+ failed/.test(l.msg)),
    ).toBe(true);
  });

  it('says what RBAC is missing when the API refuses', async () => {
    const api = await fakeApi({ [LABEL]: 'a' });
    api.failWith = 403;
    const { logger, lines } = collectingLogger();
    const { watcher, changes } = await watch(api.url, logger);
    expect(watcher.synced).toBe(false);
    expect(lines.find((l) => l.level === 40)?.err).toBe(
      'GET /api/v1/nodes/node-a: 403 injected failure 403 (the service account needs get and watch on nodes)',
    );
    api.failWith = undefined;
    await expect.poll(() => changes).toEqual([['a', undefined]]);
  });

  it('stop() closes the watch and ends the retries; no callback after it', async () => {
    const api = await fakeApi({ [LABEL]: 'a' });
    const { watcher, changes } = await watch(api.url);
    await expect.poll(() => api.openWatches).toBe(1);
    await watcher.stop();
    await expect.poll(() => api.openWatches).toBe(0);
    const requests = api.requests.length;
    api.setLabels({ [LABEL]: 'b' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(changes).toEqual([]);
    expect(api.requests.length).toBe(requests);
    await watcher.stop(); // twice is fine
  });

  it('stop() during the retries ends them without waiting out the backoff', async () => {
    const BACKOFF_MS = 60_000;
    const port = await freePort();
    const { logger, lines } = collectingLogger();
    const { watcher } = await watch(`http://127.0.0.1:${port}`, logger, {
      initialMs: BACKOFF_MS,
      maxMs: BACKOFF_MS,
    });
    // The first read failed: the watcher now sleeps a minute (give or take its jitter) before the next.
    expect(lines.some((l) => l.msg.startsWith('cannot read node node-a'))).toBe(true);
    let timer: NodeJS.Timeout | undefined;
    const backoffEnds = new Promise<'backoff'>((resolve) => {
      // Well short of the backoff (48 s at least with jitter), within the test's own timeout.
      timer = setTimeout(() => resolve('backoff'), 10_000);
    });
    const first = await Promise.race([watcher.stop().then(() => 'stopped' as const), backoffEnds]);
    clearTimeout(timer);
    expect(first).toBe('stopped');
  });
});

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
