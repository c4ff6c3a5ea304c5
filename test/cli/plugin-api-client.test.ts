/**
 * The plugin's API side opens one Kubernetes client per process: with --kube-api (the config label
 * watch) and --node-labels api (the GPU feature labels) together, both go through the same client,
 * against the fake API server over HTTPS with the service account files the environment names.
 * The client class is wrapped to count its instances; everything else is the real code.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openApiSide } from '../../src/cli/plugin-command.js';
import { CONFIG_LABEL } from '../../src/config/select.js';
import { CA_FILE_ENV, TOKEN_FILE_ENV } from '../../src/kube/in-cluster.js';
import { packageRoot } from '../../src/paths.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const clients = vi.hoisted(() => ({ made: 0 }));
vi.mock('../../src/kube/client.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/kube/client.js')>();
  class CountedClient extends actual.HttpKubeClient {
    constructor(...args: ConstructorParameters<typeof actual.HttpKubeClient>) {
      super(...args);
      clients.made++;
    }
  }
  return { ...actual, HttpKubeClient: CountedClient };
});

const TLS_DIR = path.join(packageRoot(), 'test/fixtures/kube-api-tls');
const NODE = 'gpu-node-1';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.unstubAllEnvs();
});

describe('the plugin API side', () => {
  it('watches the config label and patches the GPU feature labels through one client', async () => {
    const tls = {
      key: await readFile(path.join(TLS_DIR, 'server.key')),
      cert: await readFile(path.join(TLS_DIR, 'server.crt')),
    };
    const api = await FakeKubeApi.start(NODE, { [CONFIG_LABEL]: 'whole' }, { tls });
    cleanups.push(() => api.close());
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '127.0.0.1');
    vi.stubEnv('KUBERNETES_SERVICE_PORT', String(api.port));
    vi.stubEnv(CA_FILE_ENV, path.join(TLS_DIR, 'server.crt'));
    const secrets = await mkdtemp(path.join(os.tmpdir(), 'vgpu-sa-'));
    cleanups.push(() => rm(secrets, { recursive: true, force: true }));
    await writeFile(path.join(secrets, 'token'), 'token-1\n');
    vi.stubEnv(TOKEN_FILE_ENV, path.join(secrets, 'token'));

    const values = { 'kube-api': true, 'node-labels': 'api' };
    const { sink, labels } = await openApiSide(values, NODE, pino({ level: 'silent' }));
    cleanups.push(async () => labels?.watcher.stop());
    expect(labels?.value).toBe('whole');
    await sink!.publish({ 'nvidia.com/gpu.count': '1' }, AbortSignal.timeout(10_000));
    expect(api.nodeLabels['nvidia.com/gpu.count']).toBe('1');
    expect(clients.made).toBe(1);
  });
});
