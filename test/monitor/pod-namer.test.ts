/**
 * The monitor's container names from the pods on its node, followed through the fake API server over
 * HTTP with the agent's own client: container IDs of every kind of container with their runtime
 * prefix stripped, static pods named by the cgroup's config hash, deleted pods forgotten after a grace
 * period (memory follows the node's pods), relists on 410 Gone, and never a cluster-wide request.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpKubeClient, type KubePod } from '../../src/kube/client.js';
import { createLogger, type Logger } from '../../src/log.js';
import { bareContainerId, CONFIG_HASH_ANNOTATION, PodNamer } from '../../src/monitor/pod-namer.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const NODE = 'gpu-node-1';
const hex64 = (c: string) => c.repeat(64);
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

const silent = createLogger({
  level: 'debug',
  destination: new Writable({ write: (_chunk, _encoding, done) => done() }),
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type PodSpec = Parameters<FakeKubeApi['putPod']>[0];

function pod(
  uid: string,
  name: string,
  containers: Record<string, string>,
  extra: {
    annotations?: Record<string, string>;
    init?: Record<string, string>;
    ephemeral?: Record<string, string>;
  } = {},
): PodSpec {
  const statuses = (byName: Record<string, string> = {}) =>
    Object.entries(byName).map(([container, containerID]) => ({ name: container, containerID }));
  return {
    metadata: {
      uid,
      name,
      namespace: 'ml',
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    status: {
      containerStatuses: statuses(containers),
      initContainerStatuses: statuses(extra.init),
      ephemeralContainerStatuses: statuses(extra.ephemeral),
    },
  } satisfies Omit<KubePod, 'metadata'> & { metadata: Omit<KubePod['metadata'], 'resourceVersion'> };
}

async function fakeApi(): Promise<FakeKubeApi> {
  const api = await FakeKubeApi.start(NODE, {});
  cleanups.push(() => api.close());
  return api;
}

async function namer(api: FakeKubeApi, options: { forgetAfterMs?: number; now?: () => number } = {}) {
  const started = await PodNamer.start({
    nodeName: NODE,
    client: new HttpKubeClient({ server: api.url, token: async () => 'token', requestTimeoutMs: 2000 }),
    logger: silent,
    retry: { initialMs: 20, maxMs: 100 },
    watchTimeoutSeconds: 60,
    ...options,
  });
  cleanups.push(() => started.stop());
  return started;
}

describe('PodNamer', () => {
  it('names containers, init and ephemeral containers by pod UID and bare container ID', async () => {
    const api = await fakeApi();
    api.putPod(
      pod(
        '11111111-2222-3333-4444-555555555555',
        'train-a',
        { trainer: `containerd://${hex64('a')}`, sidecar: `cri-o://${hex64('b')}` },
        { init: { fetch: `docker://${hex64('c')}` }, ephemeral: { debug: `containerd://${hex64('d')}` } },
      ),
    );
    const names = await namer(api);
    expect(names.synced).toBe(true);
    const uid = '11111111-2222-3333-4444-555555555555';
    expect(names.namesOf(uid, hex64('a'))).toEqual({ namespace: 'ml', pod: 'train-a', container: 'trainer' });
    expect(names.namesOf(uid, hex64('b'))?.container).toBe('sidecar');
    expect(names.namesOf(uid, hex64('c'))?.container).toBe('fetch');
    expect(names.namesOf(uid, hex64('d'))?.container).toBe('debug');
    // The process sits in the pod's own cgroup, or in a container of another pod: no name.
    expect(names.namesOf(uid, undefined)).toBeUndefined();
    expect(names.namesOf('99999999-2222-3333-4444-555555555555', hex64('a'))).toBeUndefined();

    // Every request was scoped to the node; the list was paged.
    expect(api.requests.map((r) => [r.path, r.query.fieldSelector])).toEqual(
      api.requests.map(() => ['/api/v1/pods', `spec.nodeName=${NODE}`]),
    );
    expect(api.requests[0]!.query.limit).toBe('100');
  });

  it('follows the watch: a container started later, a pod added, and a static pod by its config hash', async () => {
    const api = await fakeApi();
    const uid = '11111111-2222-3333-4444-555555555555';
    api.putPod(pod(uid, 'train-a', { trainer: '' }));
    const names = await namer(api);
    await expect.poll(() => api.openWatchesOf('pods'), { timeout: 10_000 }).toBe(1);
    expect(names.namesOf(uid, hex64('a'))).toBeUndefined();

    api.putPod(pod(uid, 'train-a', { trainer: `containerd://${hex64('a')}` }));
    await expect.poll(() => names.namesOf(uid, hex64('a'))?.container, { timeout: 10_000 }).toBe('trainer');

    // The mirror pod of a static pod: the cgroup carries kubelet's hash, the API object another UID.
    const hash = 'd76e26fba3bf2bfd215eb29011d55250';
    api.putPod(
      pod(
        'aaaaaaaa-2222-3333-4444-555555555555',
        'etcd-gpu-node-1',
        { etcd: `containerd://${hex64('e')}` },
        { annotations: { [CONFIG_HASH_ANNOTATION]: hash, 'kubernetes.io/config.mirror': hash } },
      ),
    );
    await expect
      .poll(() => names.namesOf(hash, hex64('e')), { timeout: 10_000 })
      .toEqual({ namespace: 'ml', pod: 'etcd-gpu-node-1', container: 'etcd' });
    expect(names.namesOf('aaaaaaaa-2222-3333-4444-555555555555', hex64('e'))?.pod).toBe('etcd-gpu-node-1');
  });

  it('forgets a deleted pod after the grace period, so memory follows the pods on the node', async () => {
    const api = await fakeApi();
    let now = 0;
    const names = await namer(api, { forgetAfterMs: 10_000, now: () => now });
    await expect.poll(() => api.openWatchesOf('pods'), { timeout: 10_000 }).toBe(1);
    const uidOf = (i: number) => `${String(i).padStart(8, '0')}-2222-3333-4444-555555555555`;
    for (let i = 0; i < 50; i++) api.putPod(pod(uidOf(i), `job-${i}`, { main: `containerd://${i64(i)}` }));
    for (let i = 0; i < 49; i++) api.deletePod(uidOf(i));
    // Events arrive in order: once a pod added after the deletions is named, they were all seen.
    api.putPod(pod(uidOf(50), 'marker', { main: `containerd://${i64(50)}` }));
    await expect.poll(() => names.namesOf(uidOf(50), i64(50))?.pod, { timeout: 10_000 }).toBe('marker');

    // Deleted, but within the grace period: the collection after the deletion still names it.
    expect(names.namesOf(uidOf(48), i64(48))?.pod).toBe('job-48');
    expect(names.knownPods).toBe(51);
    now += 9_999;
    expect(names.namesOf(uidOf(0), i64(0))?.pod).toBe('job-0');
    now += 1;
    expect(names.namesOf(uidOf(48), i64(48))).toBeUndefined();
    expect(names.knownPods).toBe(2);
    expect(names.namesOf(uidOf(49), i64(49))?.pod).toBe('job-49');
  });

  it('relists after 410 Gone and treats pods missing from the new list as deleted', async () => {
    const api = await fakeApi();
    let now = 0;
    const keep = '11111111-2222-3333-4444-555555555555';
    const gone = '22222222-2222-3333-4444-555555555555';
    api.putPod(pod(keep, 'keep', { main: `containerd://${hex64('a')}` }));
    api.putPod(pod(gone, 'gone', { main: `containerd://${hex64('b')}` }));
    const names = await namer(api, { forgetAfterMs: 1000, now: () => now });
    await expect.poll(() => api.openWatchesOf('pods'), { timeout: 10_000 }).toBe(1);

    // The watch breaks; meanwhile a pod goes and the history is compacted: the resumed watch gets 410.
    api.dropWatches();
    api.deletePod(gone);
    api.compact();
    await expect
      .poll(() => api.requests.filter((r) => r.query.watch !== 'true').length, { timeout: 10_000 })
      .toBe(2);
    await expect.poll(() => api.openWatchesOf('pods'), { timeout: 10_000 }).toBe(1);
    expect(names.namesOf(gone, hex64('b'))?.pod).toBe('gone'); // within the grace period
    now += 1000;
    expect(names.namesOf(gone, hex64('b'))).toBeUndefined();
    expect(names.namesOf(keep, hex64('a'))?.pod).toBe('keep');
  });

  it('resumes a dropped watch from the last bookmark, and says what RBAC is missing when refused', async () => {
    const api = await fakeApi();
    const { logger, lines } = collectingLogger();
    api.failWith = 403;
    const names = await PodNamer.start({
      nodeName: NODE,
      client: new HttpKubeClient({ server: api.url, token: async () => 'token', requestTimeoutMs: 2000 }),
      logger,
      retry: { initialMs: 20, maxMs: 100 },
      watchTimeoutSeconds: 60,
    });
    cleanups.push(() => names.stop());
    expect(names.synced).toBe(false);
    expect(lines.find((l) => l.level === 40)?.err).toBe(
      `GET /api/v1/pods: 403 injected failure 403 (the service account needs list and watch on pods)`,
    );
    api.failWith = undefined;
    await expect.poll(() => api.openWatchesOf('pods'), { timeout: 10_000 }).toBe(1);
    expect(names.synced).toBe(true);

    // A bookmark on the open watch, then (a poll later, once it has arrived) a drop: the reconnect
    // resumes from the bookmark's version. Repeated until one does, as arrival is not observable.
    const bookmarks = new Set<string>();
    let bookmarkedWatches = 0;
    await expect
      .poll(
        () => {
          const watches = api.requests.filter((r) => r.query.watch === 'true');
          if (api.openWatchesOf('pods') === 1 && bookmarkedWatches < watches.length) {
            api.bookmark();
            bookmarks.add(api.resourceVersion);
            bookmarkedWatches = watches.length;
          } else if (api.openWatchesOf('pods') === 1) {
            api.dropWatches();
          }
          return watches.some((r) => bookmarks.has(r.query.resourceVersion!));
        },
        { timeout: 10_000 },
      )
      .toBe(true);
  });

  it('reads a list in pages', async () => {
    const api = await fakeApi();
    for (let i = 0; i < 230; i++) {
      api.putPod(
        pod(`${String(i).padStart(8, '0')}-2222-3333-4444-555555555555`, `p-${i}`, {
          main: `containerd://${i64(i)}`,
        }),
      );
    }
    const names = await namer(api);
    expect(names.knownPods).toBe(230);
    const lists = api.requests.filter((r) => r.query.watch !== 'true');
    expect(lists.map((r) => r.query.continue ?? '')).toEqual(['', '100:330', '200:330']);
    expect(names.namesOf('00000229-2222-3333-4444-555555555555', i64(229))?.pod).toBe('p-229');
  });
});

describe('bareContainerId', () => {
  it('strips the runtime prefix of every runtime, and is undefined before the container exists', () => {
    expect(bareContainerId(`containerd://${hex64('a')}`)).toBe(hex64('a'));
    expect(bareContainerId(`cri-o://${hex64('b')}`)).toBe(hex64('b'));
    expect(bareContainerId(`docker://${hex64('c')}`)).toBe(hex64('c'));
    expect(bareContainerId(hex64('d'))).toBe(hex64('d'));
    expect(bareContainerId(undefined)).toBeUndefined();
    expect(bareContainerId('')).toBeUndefined();
    expect(bareContainerId('containerd://')).toBeUndefined();
  });
});

function i64(i: number): string {
  return i.toString(16).padStart(64, '0');
}
