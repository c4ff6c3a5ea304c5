/**
 * The chart's ClusterRole grants exactly what the agent uses: the agent's Kubernetes client runs
 * against the fake API server through everything it does (the config label: first read, watch, a label
 * change, a dropped watch, an expired resourceVersion; GPU feature labels: the first publish and a
 * change), each request is classified the way the API server authorizes it (resource and verb), and
 * that set must equal the rules the chart renders for the features turned on.
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
import { FakeKubeApi, type RecordedRequest } from '../kube/fake-api.js';
import { findObject, parseManifests, template } from './helm.js';

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

/** Runs the agent's node label watcher through all its paths against the fake API server. */
async function requestsOfTheAgent(): Promise<RecordedRequest[]> {
  const api = await FakeKubeApi.start('gpu-node-1', { [CONFIG_LABEL]: 'a' });
  const changes: (string | undefined)[] = [];
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  const watcher = await NodeLabelWatcher.start({
    nodeName: 'gpu-node-1',
    labelKey: CONFIG_LABEL,
    onChange: (value) => changes.push(value),
    logger: createLogger({ level: 'debug', destination: silent }),
    client: new HttpKubeClient({ server: api.url, token: async () => 'token', requestTimeoutMs: 2000 }),
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

beforeAll(() => helmBinary(4), 300_000);

describe('chart RBAC', () => {
  it('grants exactly the resources and verbs of the requests the agent makes', async () => {
    const requests = await requestsOfTheAgent();
    const used = new Set(requests.map(authorizedAs));
    expect([...used].sort()).toEqual(['/nodes get', '/nodes watch']);

    const rendered = await template(4);
    expect(rendered.code, rendered.stderr).toBe(0);
    const role = findObject(parseManifests(rendered.stdout), 'ClusterRole');
    expect([...grantedBy(role.rules)].sort()).toEqual([...used].sort());
  });

  it('GPU feature labels through the API: get and patch on nodes, only when nodeLabels.output is api', async () => {
    const used = [...new Set((await requestsOfTheLabelPatcher()).map(authorizedAs))].sort();
    expect(used).toEqual(['/nodes get', '/nodes patch']);
    const watcher = ['/nodes get', '/nodes watch'];
    expect(await grantsWith('kubeApi: {enabled: false}\nnodeLabels: {output: api}')).toEqual(used);
    expect(await grantsWith('nodeLabels: {output: api}')).toEqual([...new Set([...watcher, ...used])].sort());
    expect(await grantsWith('nodeLabels: {output: nfd}')).toEqual(watcher);
    expect(await grantsWith('kubeApi: {enabled: false}\nnodeLabels: {output: nfd}')).toEqual([]);
  });

  it('covers every API call the client can make (a new one must be classified and granted here)', () => {
    const methods = Object.getOwnPropertyNames(HttpKubeClient.prototype).filter(
      (name) => name !== 'constructor' && name !== 'request',
    );
    expect(methods.sort()).toEqual(['getNode', 'patchNodeMetadata', 'watchNodes']);
  });
});
