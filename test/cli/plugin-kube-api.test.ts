/**
 * `vgpu-agent plugin --kube-api` end to end, as a process: it finds the API the way in-cluster clients
 * do (KUBERNETES_SERVICE_HOST/PORT, HTTPS checked against the cluster CA) with the CA and token files
 * named by VGPU_AGENT_KUBE_CA_FILE / VGPU_AGENT_KUBE_TOKEN_FILE, reads its Node's config label from the
 * fake API server and switches configs when the label changes, sending the rotated token once the
 * token file changes.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CONFIG_LABEL } from '../../src/config/select.js';
import { CA_FILE_ENV, TOKEN_FILE_ENV } from '../../src/kube/in-cluster.js';
import { mockNvmlLibraryPath, packageRoot } from '../../src/paths.js';
import { ConfigMapVolume } from '../../src/sim/configmap-volume.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';
import { MockNode } from '../../src/sim/mock-node.js';
import { runCliProcess } from '../helpers/cli-process.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const TLS_DIR = path.join(packageRoot(), 'test/fixtures/kube-api-tls');
const NODE = 'gpu-node-1';
const GPU = 'nvidia.com/gpu';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function httpsApi(labels: Record<string, string>): Promise<FakeKubeApi> {
  const tls = {
    key: await readFile(path.join(TLS_DIR, 'server.key')),
    cert: await readFile(path.join(TLS_DIR, 'server.crt')),
  };
  const api = await FakeKubeApi.start(NODE, labels, { tls });
  cleanups.push(() => api.close());
  return api;
}

describe('vgpu-agent plugin --kube-api (process, against the fake API server over HTTPS)', () => {
  it("serves the config its Node's label names, switches on a label change, and sends the rotated token", async () => {
    const node = await MockNode.create('single-t4');
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const kubelet = await KubeletSimulator.start({ dir: pluginDir });
    const configMap = await ConfigMapVolume.create(
      {
        whole: 'version: v1',
        't4-ts': 'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 3}]}}',
      },
      path.join(node.dir, 'config'),
    );
    const secrets = await mkdtemp(path.join(os.tmpdir(), 'vgpu-sa-'));
    cleanups.push(async () => {
      await kubelet.stop();
      await node.remove();
      await rm(secrets, { recursive: true, force: true });
    });
    const tokenFile = path.join(secrets, 'token');
    await writeFile(tokenFile, 'token-1\n');
    const api = await httpsApi({ [CONFIG_LABEL]: 't4-ts' });

    const args = ['plugin', '--kube-api', '--node-name', NODE, '--config', configMap.dir];
    const run = runCliProcess(
      [...args, '--device-plugin-dir', pluginDir, '--metrics-address', ''],
      {
        MOCK_NVML_STATE: node.statePath,
        NVML_LIBRARY: mockNvmlLibraryPath(),
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(api.port),
        [CA_FILE_ENV]: path.join(TLS_DIR, 'server.crt'),
        [TOKEN_FILE_ENV]: tokenFile,
      },
      cleanups,
    );
    const devices = (n: number) =>
      kubelet.waitFor((s) => s.get(GPU)?.devices.length === n, { timeoutMs: 10_000 });

    await devices(3); // the label's key at start
    await expect.poll(() => api.openWatches, { timeout: 10_000 }).toBe(1);
    api.setLabels({ [CONFIG_LABEL]: 'whole' });
    await devices(1);

    // kubelet rotates the bound token in place; the next request (a reconnected watch) carries it.
    await writeFile(tokenFile, 'token-2\n');
    api.dropWatches();
    await expect.poll(() => api.requests.at(-1)?.authorization, { timeout: 10_000 }).toBe('Bearer token-2');
    api.setLabels({ [CONFIG_LABEL]: 't4-ts' });
    await devices(3);

    expect(api.requests[0]).toMatchObject({ path: `/api/v1/nodes/${NODE}`, authorization: 'Bearer token-1' });
    expect(api.requests.every((r) => r.path.startsWith('/api/v1/nodes'))).toBe(true);
    expect(run.lines.some((l) => l.msg === 'node config label is now whole')).toBe(true);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(run.stderr).toBe('');
  });

  it('exits 2 naming the file when the CA or token file the environment names is missing', async () => {
    const api = await httpsApi({});
    const run = runCliProcess(
      ['plugin', '--kube-api', '--node-name', NODE, '--metrics-address', ''],
      {
        NVML_LIBRARY: mockNvmlLibraryPath(),
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(api.port),
        [CA_FILE_ENV]: '/nonexistent/ca.crt',
        [TOKEN_FILE_ENV]: '/nonexistent/token',
      },
      cleanups,
    );
    expect((await run.exited).code).toBe(2);
    expect(run.stderr).toContain('--kube-api: cannot read the service account credentials');
    expect(run.stderr).toContain("no such file or directory, open '/nonexistent/ca.crt'");
    expect(api.requests).toEqual([]);
  });
});
