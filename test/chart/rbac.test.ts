/**
 * The chart's ClusterRole grants exactly what the agent uses: the agent's Kubernetes client runs
 * against the fake API server through everything it does (the plugin's node label: first read, watch,
 * a label change, a dropped watch, an expired resourceVersion; GPU feature labels: the first publish
 * and a change; the monitor's pod names: a paged list, watch, a dropped watch, an expired
 * resourceVersion; HAMi mode's calls), each request is classified the way the API server authorizes
 * it (resource and verb), and that set must equal the rules the chart renders for the features on.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { helmBinary } from '../../scripts/helm.mjs';
import { CONFIG_LABEL } from '../../src/config/select.js';
import { HttpKubeClient } from '../../src/kube/client.js';
import { NodeLabelPatcher } from '../../src/kube/node-label-patcher.js';
import { NodeLabelWatcher } from '../../src/kube/node-label-watcher.js';
import { createLogger } from '../../src/log.js';
import { PodNamer } from '../../src/monitor/pod-namer.js';
import { HamiApiSimulator } from '../../src/sim/hami-api.js';
import { FakeKubeApi, type RecordedRequest } from '../kube/fake-api.js';
import { ciValuesFile, findObject, parseManifests, template } from './helm.js';

const silentLogger = () =>
  createLogger({ level: 'debug', destination: new Writable({ write: (_chunk, _encoding, done) => done() }) });
const clientOf = (api: FakeKubeApi) =>
  new HttpKubeClient({ server: api.url, token: async () => 'token', requestTimeoutMs: 2000 });

/** "<apiGroup>/<resource> <verb>" as the API server's request info names a GET (core group: ""). */
function authorizedAs(request: RecordedRequest): string {
  const core = /^\/api\/v1\/(?:watch\/)?([a-z]+)(?:\/([^/]+))?$/.exec(request.path);
  if (!core) throw new Error(`unclassified request ${request.path}`);
  const [, resource, name] = core;
  const watch = request.query.watch === 'true' || request.path.startsWith('/api/v1/watch/');
  const verb =
    request.method === 'PATCH'
      ? 'patch'
      : request.method !== 'GET'
        ? request.method
        : watch
          ? 'watch'
          : name
            ? 'get'
            : 'list';
  return `/${resource} ${verb}`;
}

function grantedBy(rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[]): Set<string> {
  const granted = new Set<string>();
  for (const rule of rules)
    for (const group of rule.apiGroups)
      for (const resource of rule.resources)
        for (const verb of rule.verbs) granted.add(`${group}/${resource} ${verb}`);
  return granted;
}

/** Publishes GPU feature labels twice (a first set, then a changed one) against the fake API server. */
async function requestsOfTheLabelPatcher(): Promise<RecordedRequest[]> {
  const api = await FakeKubeApi.start('gpu-node-1', {});
  try {
    const client = new HttpKubeClient({
      server: api.url,
      token: async () => 'token',
      requestTimeoutMs: 2000,
    });
    const patcher = new NodeLabelPatcher(client, 'gpu-node-1');
    const signal = new AbortController().signal;
    await patcher.publish({ 'nvidia.com/gpu.count': '8', 'nvidia.com/mig.strategy': 'mixed' }, signal);
    await patcher.publish({ 'nvidia.com/gpu.count': '7' }, signal);
  } finally {
    await api.close();
  }
  return api.requests;
}

/** The ClusterRole's grants with these values; none when the chart renders no ClusterRole. */
async function grantsWith(values: string): Promise<string[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rbac-'));
  try {
    const file = path.join(dir, 'values.yaml');
    await writeFile(file, values);
    const rendered = await template(4, [file]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const role = parseManifests(rendered.stdout).find((o) => o.kind === 'ClusterRole');
    return role ? [...grantedBy(role.rules)].sort() : [];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs the plugin's node label watcher through all its paths against the fake API server. */
async function requestsOfThePlugin(): Promise<RecordedRequest[]> {
  const api = await FakeKubeApi.start('gpu-node-1', { [CONFIG_LABEL]: 'a' });
  const changes: (string | undefined)[] = [];
  const watcher = await NodeLabelWatcher.start({
    nodeName: 'gpu-node-1',
    labelKey: CONFIG_LABEL,
    onChange: (value) => changes.push(value),
    logger: silentLogger(),
    client: clientOf(api),
    retry: { initialMs: 20, maxMs: 100 },
    watchTimeoutSeconds: 60,
  });
  try {
    await expect.poll(() => api.openWatches, { timeout: 10_000 }).toBe(1);
    api.setLabels({ [CONFIG_LABEL]: 'b' });
    await expect.poll(() => changes, { timeout: 10_000 }).toEqual(['b']);
    api.dropWatches();
    api.setLabels({ [CONFIG_LABEL]: 'c' });
    api.compact(); // the watch resumes from an expired version: 410, then a fresh GET
    await expect.poll(() => changes, { timeout: 10_000 }).toEqual(['b', 'c']);
    await expect.poll(() => api.openWatches, { timeout: 10_000 }).toBe(1);
  } finally {
    await watcher.stop();
    await api.close();
  }
  return api.requests;
}

/** Runs the monitor's pod namer through all its paths against the fake API server. */
async function requestsOfTheMonitor(): Promise<RecordedRequest[]> {
  const api = await FakeKubeApi.start('gpu-node-1', {});
  const pod = (i: number) => ({
    metadata: {
      uid: `${String(i).padStart(8, '0')}-2222-3333-4444-555555555555`,
      name: `p${i}`,
      namespace: 'ml',
    },
    status: {
      containerStatuses: [{ name: 'main', containerID: `containerd://${i.toString(16).padStart(64, '0')}` }],
    },
  });
  for (let i = 0; i < 150; i++) api.putPod(pod(i)); // two list pages
  const namer = await PodNamer.start({
    nodeName: 'gpu-node-1',
    client: clientOf(api),
    logger: silentLogger(),
    retry: { initialMs: 20, maxMs: 100 },
    watchTimeoutSeconds: 60,
  });
  try {
    await expect.poll(() => api.openWatches, { timeout: 10_000 }).toBe(1);
    api.putPod(pod(150));
    await expect.poll(() => namer.knownPods, { timeout: 10_000 }).toBe(151);
    api.dropWatches();
    api.putPod(pod(151));
    api.compact(); // the watch resumes from an expired version: 410, then a fresh list
    await expect.poll(() => namer.knownPods, { timeout: 10_000 }).toBe(152);
    await expect.poll(() => api.openWatches, { timeout: 10_000 }).toBe(1);
  } finally {
    await namer.stop();
    await api.close();
  }
  return api.requests;
}

async function renderedRules(valuesFiles: string[] = []): Promise<Set<string>> {
  const rendered = await template(4, valuesFiles);
  expect(rendered.code, rendered.stderr).toBe(0);
  return grantedBy(findObject(parseManifests(rendered.stdout), 'ClusterRole').rules);
}

const sorted = (set: Iterable<string>) => [...set].sort();

beforeAll(() => helmBinary(4), 300_000);

describe('chart RBAC', () => {
  it('grants exactly the resources and verbs of the requests the agent makes, with the monitor off and on', async () => {
    const plugin = new Set((await requestsOfThePlugin()).map(authorizedAs));
    expect(sorted(plugin)).toEqual(['/nodes get', '/nodes watch']);
    const monitor = new Set((await requestsOfTheMonitor()).map(authorizedAs));
    expect(sorted(monitor)).toEqual(['/pods list', '/pods watch']);

    // the monitor runs by default
    expect(sorted(await renderedRules())).toEqual(sorted([...plugin, ...monitor]));
    const withoutMonitor = await renderedRules([ciValuesFile('monitor-off-values.yaml')]);
    expect(sorted(withoutMonitor)).toEqual(sorted(plugin));
  });

  it('GPU feature labels through the API: get and patch on nodes, only when nodeLabels.output is api', async () => {
    const used = [...new Set((await requestsOfTheLabelPatcher()).map(authorizedAs))].sort();
    expect(used).toEqual(['/nodes get', '/nodes patch']);
    const watcher = ['/nodes get', '/nodes watch'];
    expect(await grantsWith('kubeApi: {enabled: false}\nnodeLabels: {output: api}')).toEqual(used);
    // the monitor off: its pod list and watch are checked above
    const noMonitor = 'monitor: {enabled: false}\n';
    expect(await grantsWith(`${noMonitor}nodeLabels: {output: api}`)).toEqual(
      [...new Set([...watcher, ...used])].sort(),
    );
    expect(await grantsWith(`${noMonitor}nodeLabels: {output: nfd}`)).toEqual(watcher);
    expect(await grantsWith('kubeApi: {enabled: false}\nnodeLabels: {output: nfd}')).toEqual([]);
  });

  it('covers every API call the client can make (a new one must be classified and granted here)', () => {
    const transport = new Set(['constructor', 'request', 'watch']);
    const methods = Object.getOwnPropertyNames(HttpKubeClient.prototype).filter(
      (name) => !transport.has(name),
    );
    expect(methods.sort()).toEqual([
      'getNode',
      'getPod',
      'listPods',
      'listPodsOnNode',
      'patchNodeAnnotations',
      'patchNodeMetadata',
      'patchPodAnnotations',
      'watchNodes',
      'watchPods',
    ]);
  });

  it('with kubeApi.hami: adds exactly the calls of HAMi mode', async () => {
    const used = new Set(await requestsOfHamiMode());
    expect([...used].sort()).toEqual([
      '/nodes get',
      '/nodes patch',
      '/pods get',
      '/pods list',
      '/pods patch',
    ]);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-rbac-'));
    try {
      const values = path.join(dir, 'hami.yaml');
      // the monitor off: its pod list and watch are checked above
      await writeFile(values, 'kubeApi:\n  hami: true\nmonitor:\n  enabled: false\n');
      const rendered = await template(4, [values]);
      expect(rendered.code, rendered.stderr).toBe(0);
      const role = findObject(parseManifests(rendered.stdout), 'ClusterRole');
      expect([...grantedBy(role.rules)].sort()).toEqual([...new Set([...used, '/nodes watch'])].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Every call HAMi mode makes (src/hami/ uses these client methods only), classified as authorized. */
async function requestsOfHamiMode(): Promise<string[]> {
  const api = await HamiApiSimulator.start('gpu-node-1');
  try {
    const client = new HttpKubeClient({ server: api.url });
    const signal = AbortSignal.timeout(10_000);
    api.addPod({
      metadata: { name: 'p', namespace: 'default', uid: 'u', resourceVersion: '1' },
      spec: { nodeName: 'gpu-node-1', containers: [{ name: 'main' }] },
    });
    const node = await client.getNode('gpu-node-1', signal);
    await client.patchNodeAnnotations('gpu-node-1', { a: 'b' }, signal, node.metadata.resourceVersion);
    await client.getPod('default', 'p', signal);
    await client.listPodsOnNode('gpu-node-1', signal);
    await client.patchPodAnnotations('default', 'p', { a: 'b' }, signal);
    return api.calls.map((call) => {
      const [, resource, name] = /^\/api\/v1\/(?:namespaces\/[^/]+\/)?([a-z]+)(?:\/([^/]+))?$/.exec(
        call.path,
      )!;
      const verb = call.method === 'PATCH' ? 'patch' : name ? 'get' : 'list';
      return `/${resource} ${verb}`;
    });
  } finally {
    await api.close();
  }
}
