/**
 * `vgpu-agent monitor` as a process with its sources wired by flags, as the chart runs it: names from
 * the pods on the node (`--kube-api`, the fake API server over HTTPS found through
 * KUBERNETES_SERVICE_HOST/PORT and the credential file variables), allocations from kubelet's
 * PodResources (`--pod-resources-socket`, the simulator's server on a real Unix socket) and
 * dcgm-exporter's series (`--compat dcgm`). Each source is asked for by a flag: without them the same
 * process labels containers by pod_uid / container_id only (monitor-process.test.ts).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CA_FILE_ENV, TOKEN_FILE_ENV } from '../../src/kube/in-cluster.js';
import { packageRoot } from '../../src/paths.js';
import { MockNode } from '../../src/sim/mock-node.js';
import { PodResourcesServer, type PodResourcesView } from '../../src/sim/pod-resources.js';
import { killAll, logLine, runCli, runMonitorCli } from '../helpers/cli-process.js';
import { containerCgroup, FakeHostProc } from '../helpers/fake-proc.js';
import { twoGpuState } from '../helpers/mock-nvml.js';
import { scrape, seriesValue } from '../helpers/scrape.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const MIB = 1024 * 1024;
const NODE = 'gpu-node-1';
const TLS_DIR = path.join(packageRoot(), 'test/fixtures/kube-api-tls');
const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const TRAINER_UID = 'aaaaaaaa-0000-4000-8000-000000000001';
const TRAINER = 'a1'.repeat(32);
const SNEAKY_UID = 'bbbbbbbb-0000-4000-8000-000000000002';
const SNEAKY = 'b2'.repeat(32);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await killAll();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The trainer holds a replica of GPU 0; "sneaky" was allocated nothing and uses GPU 1. */
async function simulatedNode(): Promise<MockNode> {
  const state = twoGpuState();
  state.devices[0]!.processes = [{ pid: 101, usedMemoryMiB: 1024, smUtil: 30 }];
  state.devices[1]!.processes = [{ pid: 201, usedMemoryMiB: 512 }];
  const node = await MockNode.create(state);
  cleanups.push(() => node.remove());
  const proc = await FakeHostProc.create(node.hostPaths.procRoot);
  await proc.setPidNamespace(true);
  await proc.add(
    { pid: 101, cgroup: containerCgroup({ podUid: TRAINER_UID, containerId: TRAINER }) },
    { pid: 201, cgroup: containerCgroup({ podUid: SNEAKY_UID, containerId: SNEAKY }) },
  );
  return node;
}

async function httpsApi(): Promise<FakeKubeApi> {
  const tls = {
    key: await readFile(path.join(TLS_DIR, 'server.key')),
    cert: await readFile(path.join(TLS_DIR, 'server.crt')),
  };
  const api = await FakeKubeApi.start(NODE, {}, { tls });
  cleanups.push(() => api.close());
  api.putPod({
    metadata: { uid: TRAINER_UID, name: 'trainer-0', namespace: 'ml' },
    status: { containerStatuses: [{ name: 'train', containerID: `containerd://${TRAINER}` }] },
  });
  api.putPod({
    metadata: { uid: SNEAKY_UID, name: 'sneaky', namespace: 'dev' },
    status: { containerStatuses: [{ name: 'main', containerID: `containerd://${SNEAKY}` }] },
  });
  return api;
}

async function podResources(): Promise<string> {
  const socket = path.join(await tempDir('vgpu-pod-resources-'), 'kubelet.sock');
  const replica = `${GPU0}::2`;
  const view: PodResourcesView = {
    admissions: () => [
      {
        namespace: 'ml',
        pod: 'trainer-0',
        container: 'train',
        resourceName: 'nvidia.com/gpu',
        deviceIds: [replica],
      },
      { namespace: 'dev', pod: 'sneaky', container: 'main', resourceName: 'nvidia.com/gpu', deviceIds: [] },
    ],
    devices: () => new Map([['nvidia.com/gpu', [{ ID: replica, health: 'Healthy', topology: null }]]]),
  };
  const server = await PodResourcesServer.listen(socket, view);
  cleanups.push(async () => server.shutdown());
  return socket;
}

describe('vgpu-agent monitor with --kube-api, --pod-resources-socket and --compat (process)', () => {
  it('names containers from the API, joins their allocations, and serves the dcgm series', async () => {
    const node = await simulatedNode();
    const api = await httpsApi();
    const secrets = await tempDir('vgpu-sa-');
    const tokenFile = path.join(secrets, 'token');
    await writeFile(tokenFile, 'monitor-token\n');
    const run = runMonitorCli(
      node,
      ['--kube-api', '--pod-resources-socket', await podResources(), '--compat', 'dcgm'],
      {
        NODE_NAME: NODE,
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(api.port),
        [CA_FILE_ENV]: path.join(TLS_DIR, 'server.crt'),
        [TOKEN_FILE_ENV]: tokenFile,
      },
    );
    const serving = 'serving /metrics, /healthz, /readyz';
    await expect.poll(() => logLine(run, serving), { timeout: 20_000 }).toBeDefined();
    const port = logLine(run, serving)!.port as number;
    const trainer = { namespace: 'ml', pod: 'trainer-0', container: 'train', uuid: GPU0 };
    await expect
      .poll(async () => seriesValue(await scrape(port), 'vgpu_container_memory_used_bytes', trainer), {
        timeout: 20_000,
      })
      .toBe(1024 * MIB);

    const samples = await scrape(port);
    expect(
      seriesValue(samples, 'vgpu_container_allocation_info', { ...trainer, device_id: `${GPU0}::2` }),
    ).toBe(1);
    const sneaky = { kind: 'container', namespace: 'dev', pod: 'sneaky', container: 'main', uuid: GPU1 };
    expect(seriesValue(samples, 'vgpu_unallocated_memory_used_bytes', sneaky)).toBe(512 * MIB);
    // dcgm-exporter's names: the one container on GPU 0 carries the device's row
    expect(
      seriesValue(samples, 'DCGM_FI_DEV_FB_USED', { UUID: GPU0, namespace: 'ml', pod: 'trainer-0' }),
    ).toBeGreaterThan(0);

    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(run.stderr).toBe('');
  });

  it.each([
    [['--compat', 'dcgm,prometheus'], /--compat \(MONITOR_COMPAT\): "prometheus" is not one of dcgm, hami/],
    [['--split-gc-grace', 'later'], /--split-gc-grace \(SPLIT_GC_GRACE\): "later" is not a duration/],
    [['--kube-api'], /--kube-api needs --node-name/],
  ])('refuses %j with exit 2 before touching NVML', async (args, message) => {
    const run = runCli(['monitor', ...args], { NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    expect((await run.exited).code).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});
