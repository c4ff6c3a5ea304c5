import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { ConfigMapVolume } from '../config/configmap-volume.js';

const DGX_GPU0 = 'GPU-a7942715-1318-6ca6-69f2-9aad70a8a8fd';

async function check(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const sink = (key: 'stdout' | 'stderr') =>
    new Writable({
      write(chunk, _encoding, done) {
        out[key] += String(chunk);
        done();
      },
    });
  const code = await runCli(['config', 'check', ...args], {
    stdout: sink('stdout'),
    stderr: sink('stderr'),
    env,
  });
  return { code, ...out };
}

let dir: string;
const cleanups: (() => Promise<void>)[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-config-check-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function file(name: string, text: string): Promise<string> {
  const target = path.join(dir, name);
  await writeFile(target, text);
  return target;
}

const TIME_SLICING = `version: v1
sharing:
  timeSlicing:
    failRequestsGreaterThanOne: true
    resources:
      - name: nvidia.com/gpu
        replicas: 4
`;

describe('vgpu-agent config check', () => {
  it("accepts NVIDIA's time-slicing file and shows the devices of the default node", async () => {
    const config = await file('time-slicing.yaml', TIME_SLICING);
    const { code, stdout, stderr } = await check([config]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(`Config:  ${config} (a single file)\n`);
    expect(stdout).toMatch(/^Hash: {4}[0-9a-f]{12}$/m);
    expect(stdout).toContain('Node:    dgx-a100 (inventory dgx-a100: 8 GPU(s), driver 580.95.05)\n');
    expect(stdout).toContain('Warnings: none\n');
    expect(stdout).toContain('          replicas: 4\n'); // the effective config, as YAML
    expect(stdout).toContain(
      [
        'Resources dgx-a100 would advertise:',
        '  nvidia.com/gpu: 32 device(s), time-slicing, on 8 GPU(s), at most 1 per container',
        `    IDs: ${DGX_GPU0}::0`,
        `         ${DGX_GPU0}::1`,
        `         ${DGX_GPU0}::2`,
        `         ${DGX_GPU0}::3`,
        '         … 28 more',
        '',
      ].join('\n'),
    );
  });

  it('exits 2 with the exact error line for an invalid file', async () => {
    const config = await file('bad.yaml', TIME_SLICING.replace('replicas: 4', 'replicas: 1'));
    expect(await check([config])).toEqual({
      code: 2,
      stdout: '',
      stderr: `${config}: sharing.timeSlicing.resources[0].replicas: number of replicas must be >= 2 (got 1)\n`,
    });
  });

  it('selects the ConfigMap key named by the node label', async () => {
    const volume = await ConfigMapVolume.create({
      default: 'version: v1\n',
      'ts-4': TIME_SLICING,
      'split-10':
        'version: v1\nsharing:\n  split:\n    resources:\n      - name: nvidia.com/gpu\n        count: 10\n',
    });
    cleanups.push(() => volume.remove());
    const labels = 'kubernetes.io/hostname=gpu-7,nvidia.com/device-plugin.config=split-10';
    const text = await check([volume.dir, '--node', 'gpu-7', '--labels', labels]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      `Config:  ${volume.dir}, key split-10 (chosen by node label nvidia.com/device-plugin.config=split-10)\n`,
    );
    expect(text.stdout).toContain('Node:    gpu-7 (inventory dgx-a100: 8 GPU(s), driver 580.95.05)\n');
    expect(text.stdout).toContain('  nvidia.com/gpu: 80 device(s), split, on 8 GPU(s)\n');

    const json = await check([volume.dir, '--labels', labels, '--output', 'json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({
      valid: true,
      node: 'dgx-a100',
      config: {
        path: volume.dir,
        name: 'split-10',
        file: path.join(volume.dir, 'split-10'),
        reason: 'label',
      },
      resources: [{ name: 'nvidia.com/gpu', sharing: 'split', devices: 80, gpus: 8, migs: 0 }],
    });
    expect(report.resources[0].ids).toHaveLength(80);

    // No label: the key named default; a label naming a missing key: NVIDIA's error.
    expect((await check([volume.dir])).stdout).toContain(
      `key default (the key named default (no --config-name, no node label))`,
    );
    expect(await check([volume.dir, '--labels', 'nvidia.com/device-plugin.config=big'])).toEqual({
      code: 2,
      stdout: '',
      stderr:
        `${volume.dir}: specified config big does not exist (available: default, split-10, ts-4); ` +
        'named by node label nvidia.com/device-plugin.config\n',
    });
    // --config-name wins over the label, as in the agent.
    expect((await check([volume.dir, '--labels', labels, '--config-name', 'ts-4'])).stdout).toContain(
      'key ts-4 (chosen by --config-name)',
    );
  });

  it("refuses MIG strategy single on a node with mixed MIG modes, in NVIDIA's words", async () => {
    const config = await file('single.yaml', 'version: v1\nflags:\n  migStrategy: single\n');
    expect(await check([config, '--inventory', 'mixed-mig'])).toEqual({
      code: 2,
      stdout: '',
      stderr:
        `${config}: flags.migStrategy: single cannot be used on node mixed-mig: ` +
        'all devices on the node must be configured with the same migEnabled value\n',
    });
  });

  it('advertises one resource per MIG profile with the mixed strategy', async () => {
    const config = await file('mixed.yaml', 'version: v1\nflags:\n  migStrategy: mixed\n');
    const { code, stdout } = await check([config, '--inventory', 'mixed-mig']);
    expect(code).toBe(0);
    expect(stdout).toContain(
      'Node:    mixed-mig (inventory mixed-mig: 2 GPU(s), 3 MIG device(s), driver 580.95.05)',
    );
    expect(stdout).toContain('  nvidia.com/gpu: 1 device(s), exclusive, on 1 GPU(s)\n');
    expect(stdout).toContain('  nvidia.com/mig-2g.10gb: 2 device(s), exclusive, on 2 MIG device(s)\n');
    expect(stdout).toContain('  nvidia.com/mig-3g.20gb: 1 device(s), exclusive, on 1 MIG device(s)\n');
  });

  it('shows the GPU feature labels the node would get, in text and JSON', async () => {
    const config = await file('mixed.yaml', 'version: v1\nflags:\n  migStrategy: mixed\n');
    const { code, stdout } = await check([config, '--inventory', 'mixed-mig']);
    expect(code).toBe(0);
    expect(stdout).toContain(
      "GPU feature labels mixed-mig would get (--node-labels nfd|api; gpu.machine and gpu.mode come from the node's sysfs):\n",
    );
    for (const line of [
      'nvidia.com/gpu.count=2',
      'nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB',
      'nvidia.com/mig.strategy=mixed',
      'nvidia.com/mig-2g.10gb.count=2',
      'nvidia.com/mig-3g.20gb.product=NVIDIA-A100-SXM4-40GB-MIG-3g.20gb',
      'nvidia.com/gpu.machine=unknown',
    ])
      expect(stdout).toContain(`\n  ${line}\n`);
    const json = await check([config, '--inventory', 'mixed-mig', '--output', 'json']);
    expect(JSON.parse(json.stdout).labels).toMatchObject({
      'nvidia.com/mig-2g.10gb.count': '2',
      'nvidia.com/gpu.replicas': '1',
    });
  });

  it('prints split slice sizes to the MiB', async () => {
    const config = await file(
      'split.yaml',
      `version: v1
sharing:
  split:
    resources:
      - name: nvidia.com/gpu
        devices: [0, 1]
        count: 3
        rename: nvidia.com/gpu-third
      - name: nvidia.com/gpu
        devices: [2, 3, 4, 5, 6, 7]
        count: 8
        memoryScaling: 1.5
`,
    );
    const { code, stdout } = await check([config]);
    expect(code).toBe(0);
    expect(stdout).toContain(
      '  nvidia.com/gpu: 48 device(s), split, on 6 GPU(s)\n    slice: 15360 MiB memory, 12% of SMs (48 slice(s))\n',
    );
    expect(stdout).toContain(
      '  nvidia.com/gpu-third: 6 device(s), split, on 2 GPU(s)\n    slice: 27306 MiB memory, 33% of SMs (6 slice(s))\n',
    );
    const report = JSON.parse((await check([config, '--output', 'json'])).stdout);
    expect(report.resources.map((r: { name: string; slices: unknown }) => [r.name, r.slices])).toEqual([
      ['nvidia.com/gpu', [{ memoryMiB: 15360, corePercent: 12, count: 48 }]],
      ['nvidia.com/gpu-third', [{ memoryMiB: 27306, corePercent: 33, count: 6 }]],
    ]);
  });

  it('refuses a config that names more devices than the node has', async () => {
    const config = await file(
      'nine.yaml',
      TIME_SLICING.replace('replicas: 4', 'replicas: 2\n        devices: 9'),
    );
    const { code, stderr, stdout } = await check([config, '--output', 'json']);
    const line =
      `${config}: sharing.timeSlicing.resources[0]: requested 9 devices to be replicated, ` +
      'but only 8 devices available (on node dgx-a100)';
    expect(code).toBe(2);
    expect(stderr).toBe(`${line}\n`);
    expect(JSON.parse(stdout)).toEqual({ valid: false, errors: [line] });
  });

  it('refuses a config whose device list would not reach kubelet, naming the resource, size and limit', async () => {
    const config = await file('many.yaml', TIME_SLICING.replace('replicas: 4', 'replicas: 9000'));
    const { code, stderr } = await check([config]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      `${config}: sharing.timeSlicing.resources[0]: nvidia.com/gpu would have 72000 devices (8 × 9000 replicas), ` +
        'a ListAndWatch message of 4815120 bytes (4.59 MiB); at most 3670016 bytes (3.5 MiB) fit safely ' +
        "under kubelet's 4 MiB message limit: lower replicas or select fewer devices (on node dgx-a100)\n",
    );
    // The same config fits a node with one GPU.
    expect((await check([config, '--inventory', 'single-t4'])).code).toBe(0);
  });

  it('reads a mock NVML state file as the inventory', async () => {
    const state = await file(
      'gpu-node-3.json',
      JSON.stringify({ devices: [{ uuid: 'GPU-0', name: 'Tesla T4', memoryTotalMiB: 15360 }] }),
    );
    const config = await file(
      'split.yaml',
      'version: v1\nsharing:\n  split:\n    resources:\n      - name: nvidia.com/gpu\n        count: 4\n',
    );
    const { code, stdout } = await check([config, '--inventory', state]);
    expect(code).toBe(0);
    expect(stdout).toContain('Node:    gpu-node-3 (inventory gpu-node-3: 1 GPU(s), driver 580.95.05)');
    expect(stdout).toContain('    slice: 3840 MiB memory, 25% of SMs (4 slice(s))\n    IDs: GPU-0::0\n');
  });

  it('reports bad inputs with exit 2', async () => {
    const config = await file('ok.yaml', 'version: v1\n');
    const broken = await file('broken.json', '{"devices": [{"name": "x"}]}');
    expect(await check([config, '--inventory', broken])).toEqual({
      code: 2,
      stdout: '',
      stderr: `${broken}: devices[0].uuid: Invalid input: expected string, received undefined\n`,
    });
    expect((await check([config, '--inventory', 'dgx-h100'])).stderr).toBe(
      '--inventory dgx-h100: not found (expected a mock NVML state file, or one of dgx-a100, mixed-mig, single-t4)\n',
    );
    expect(await check([config, '--labels', 'gpu'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--labels: "gpu" is not key=value'),
    });
    expect(await check([])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('expected the config FILE or ConfigMap DIR to check'),
    });
    expect((await check([path.join(dir, 'missing.yaml')])).stderr).toBe(
      `${path.join(dir, 'missing.yaml')}: not found (expected a config file or a mounted ConfigMap directory)\n`,
    );
  });

  it('checks the mounted config named by CONFIG_FILE when no path is given (inside the pod)', async () => {
    const config = await file('config.yaml', TIME_SLICING);
    const { code, stdout } = await check([], { CONFIG_FILE: config, NODE_NAME: 'gpu-node-9' });
    expect(code).toBe(0);
    expect(stdout).toContain(`Config:  ${config} (a single file)`);
    expect(stdout).toContain('Node:    gpu-node-9 (inventory dgx-a100');
  });
});

describe('vgpu-agent config check: HAMi mode', () => {
  it("HAMi's device-config.yaml: the replicas, the register annotation and the request names", async () => {
    const config = await file(
      'device-config.yaml',
      'nvidia:\n  deviceSplitCount: 5\n  deviceMemoryScaling: 1.5\n  defaultMemory: 0\n',
    );
    const { code, stdout, stderr } = await check([config]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain("nvidia.defaultMemory: read by HAMi's scheduler and webhook, not by the node");
    expect(stdout).toContain('nvidia.com/gpu: 40 device(s), hami, on 8 GPU(s)');
    expect(stdout).toContain(`IDs: ${DGX_GPU0}-0`);
    expect(stdout).toContain('would register (node annotation hami.io/node-nvidia-register):');
    expect(stdout).toContain(
      `[{"id":"${DGX_GPU0}","count":5,"devmem":122880,"devcore":100,"type":"NVIDIA A100-SXM4-80GB","mode":"hami-core","health":true},`,
    );
    expect(stdout).toContain(
      'pods request nvidia.com/gpu, nvidia.com/gpumem (MiB), nvidia.com/gpumem-percentage, nvidia.com/gpucores (%), nvidia.com/priority',
    );
    expect(stdout).toContain(
      'topology scores (hami.io/node-nvidia-score): not written (sharing.hami.topologyScore is off)',
    );
    // The labels: GPUs shared by 5 for GFD's set, HAMi mode and its settings in ours.
    for (const label of [
      'nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB-SHARED',
      'nvidia.com/gpu.replicas=5',
      'nvidia.com/gpu.sharing-strategy=time-slicing',
      'vgpu-agent.io/gpu.sharing-strategy=hami',
      'vgpu-agent.io/gpu.split-count=5',
      'vgpu-agent.io/gpu.memory-scaling=1.5',
      'vgpu-agent.io/gpu.core-scaling=1',
    ])
      expect(stdout).toContain(`\n  ${label}\n`);
  });

  it('topologyScore: the score annotation too, text and JSON', async () => {
    const config = await file('hami.yaml', 'sharing: {hami: {topologyScore: true}}');
    const { code, stdout } = await check([config]);
    expect(code).toBe(0);
    expect(stdout).toContain('topology scores (node annotation hami.io/node-nvidia-score):');
    // GPU 0 of dgx-a100, its peers in UUID order (Go sorts map keys): GPUs 5, 2, 1, 7, 6, 4, 3, scored
    // 100 per NVLink + 50 same PCIe switch / 20 same NUMA node / 10 across CPUs (test/hami/topology-score.test.ts).
    expect(stdout).toContain(
      `  [{"uuid":"${DGX_GPU0}","score":{"GPU-21f05f37-5b5b-4633-546b-48032a1a31a3":110,` +
        '"GPU-5ff6394d-9a15-1bbb-7cdb-14a6ed5147dd":220,"GPU-6a58171b-627f-eace-6507-82fafa084229":250,' +
        '"GPU-a6a940a0-1a4d-4bee-4a67-798ff0e658b7":210,"GPU-cc6d0fd4-dbc4-b824-e554-8cedac377e1b":210,' +
        '"GPU-e49badd2-954d-5046-cf76-41daa6f2824e":210,"GPU-ff98eebc-90c9-0f0a-0cf7-7eb23c76ef1d":120}},',
    );
    const report = JSON.parse((await check([config, '--output', 'json'])).stdout);
    const scores = JSON.parse(report.resources[0].hamiScore) as { uuid: string }[];
    expect(scores.map((s) => s.uuid)).toEqual(
      JSON.parse(report.resources[0].hamiRegister).map((g: { id: string }) => g.id),
    );
  });
});
