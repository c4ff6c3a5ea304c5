/**
 * The chart's ClusterRole grants exactly what the agent uses: the agent's Kubernetes client runs
 * against the fake API server through everything it does (the plugin's node label: first read, watch,
 * a label change, a dropped watch, an expired resourceVersion; the monitor's pod names: a paged list,
 * watch, a dropped watch, an expired resourceVersion), each request is classified the way the API
 * server authorizes it (resource and verb), and that set must equal the rules the chart renders, with
 * the monitor off and on.
 */
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { helmBinary } from '../../scripts/helm.mjs';
import { CONFIG_LABEL } from '../../src/config/select.js';
import { HttpKubeClient } from '../../src/kube/client.js';
import { NodeLabelWatcher } from '../../src/kube/node-label-watcher.js';
import { createLogger } from '../../src/log.js';
import { PodNamer } from '../../src/monitor/pod-namer.js';
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
  const verb = watch ? 'watch' : name ? 'get' : 'list';
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

    expect(sorted(await renderedRules())).toEqual(sorted(plugin));
    const withMonitor = await renderedRules([ciValuesFile('servicemonitor-values.yaml')]);
    expect(sorted(withMonitor)).toEqual(sorted([...plugin, ...monitor]));
  });

  it('covers every API call the client can make (a new one must be classified and granted here)', () => {
    const transport = new Set(['constructor', 'request', 'watch']);
    const methods = Object.getOwnPropertyNames(HttpKubeClient.prototype).filter(
      (name) => !transport.has(name),
    );
    expect(methods.sort()).toEqual(['getNode', 'listPods', 'watchNodes', 'watchPods']);
  });
});
