/** `vgpu-agent plugin` as a process: registration, HTTP endpoints, SIGTERM, exit codes. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mockNvmlLibraryPath } from '../../src/paths.js';
import { ConfigMapVolume } from '../../src/sim/configmap-volume.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';
import { MockNode } from '../../src/sim/mock-node.js';
import { runCliProcess } from '../helpers/cli-process.js';
import { startSilentKubelet } from '../helpers/silent-kubelet.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const runCli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCliProcess(args, env, cleanups);

describe('vgpu-agent plugin (process)', () => {
  it('registers, serves /healthz /readyz /metrics, and stops on SIGTERM removing its socket', async () => {
    const node = await MockNode.create('dgx-a100');
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const kubelet = await KubeletSimulator.start({ dir: pluginDir });
    cleanups.push(async () => {
      await kubelet.stop();
      await node.remove();
    });
    const run = runCli(
      [
        'plugin',
        '--device-plugin-dir',
        pluginDir,
        '--metrics-address',
        '127.0.0.1:0',
        '--host-sys',
        node.hostPaths.sysfsRoot,
      ],
      { MOCK_NVML_STATE: node.statePath, NVML_LIBRARY: mockNvmlLibraryPath() },
    );
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 8, { timeoutMs: 10_000 });
    await expect
      .poll(() => run.lines.find((l) => l.msg === 'serving /metrics, /healthz, /readyz'))
      .toBeDefined();
    const port = run.lines.find((l) => l.msg === 'serving /metrics, /healthz, /readyz')!.port as number;
    const get = (p: string) => fetch(`http://127.0.0.1:${port}${p}`);
    expect((await get('/healthz')).status).toBe(200);
    await expect.poll(async () => (await get('/readyz')).status).toBe(200);
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toContain('vgpu_agent_devices{resource="nvidia.com/gpu",health="Healthy"} 8');
    expect(metrics).toContain('vgpu_agent_registrations_total{resource="nvidia.com/gpu",result="ok"} 1');
    expect(metrics).toMatch(/# HELP vgpu_agent_allocate_duration_seconds /);

    const socket = path.join(pluginDir, 'vgpu-gpu.sock');
    expect(existsSync(socket)).toBe(true);
    // How fast: bench/shutdown-latency.mjs.
    run.child.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(run.lines.some((l) => l.msg === 'stopped: sockets removed')).toBe(true);
  });

  it('on SIGTERM cancels a Register kubelet never answers instead of waiting out its deadline', async () => {
    const node = await MockNode.create('single-t4');
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const kubelet = await startSilentKubelet(pluginDir);
    cleanups.push(async () => {
      kubelet.stop();
      await node.remove();
    });
    const run = runCli(['plugin', '--device-plugin-dir', pluginDir, '--metrics-address', ''], {
      MOCK_NVML_STATE: node.statePath,
      NVML_LIBRARY: mockNvmlLibraryPath(),
    });
    await expect.poll(() => kubelet.calls, { timeout: 10_000 }).toBe(1);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    // A call that ran out its deadline ends cancelled too, but only once that deadline has passed.
    await expect.poll(() => kubelet.cancelled, { timeout: 10_000 }).toBe(1);
    expect(kubelet.cancelledBeforeDeadline).toBe(1);
  });

  it('writes only JSON lines while the plugin directory is deleted and re-created, none on stderr', async () => {
    const node = await MockNode.create('single-t4');
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const kubelet = await KubeletSimulator.start({ dir: pluginDir });
    cleanups.push(async () => {
      await kubelet.stop();
      await node.remove();
    });
    const run = runCli(['plugin', '--device-plugin-dir', pluginDir, '--metrics-address', ''], {
      MOCK_NVML_STATE: node.statePath,
      NVML_LIBRARY: mockNvmlLibraryPath(),
    });
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 1, { timeoutMs: 10_000 });
    await rm(pluginDir, { recursive: true, force: true });
    // Long enough for several polls and attempts to serve while the directory is missing.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await mkdir(pluginDir);
    await kubelet.restart();
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.registrations === 2, { timeoutMs: 10_000 });
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(run.stderr).toBe('');
    expect(JSON.stringify(run.lines)).not.toMatch(/permission denied/i);
  });

  it('serves the ConfigMap key named by --config-name and follows edits of it', async () => {
    const node = await MockNode.create('single-t4');
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const kubelet = await KubeletSimulator.start({ dir: pluginDir });
    const configMap = await ConfigMapVolume.create(
      {
        default: 'version: v1',
        't4-ts': 'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 3}]}}',
      },
      path.join(node.dir, 'config'),
    );
    cleanups.push(async () => {
      await kubelet.stop();
      await node.remove();
    });
    runCli(
      ['plugin', '--config', configMap.dir, '--config-name', 't4-ts', '--device-plugin-dir', pluginDir],
      {
        MOCK_NVML_STATE: node.statePath,
        NVML_LIBRARY: mockNvmlLibraryPath(),
        METRICS_ADDRESS: '',
      },
    );
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 3, { timeoutMs: 10_000 });
    await configMap.write({
      default: 'version: v1',
      't4-ts': 'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 5}]}}',
    });
    await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 5, { timeoutMs: 5000 });
  });

  it('refuses a FIFO in the config, keeps following edits and SIGHUP, and still stops cleanly', async () => {
    const node = await MockNode.create('single-t4');
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const kubelet = await KubeletSimulator.start({ dir: pluginDir });
    const timeSliced = (replicas: number) =>
      `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: ${replicas}}]}}`;
    const configMap = await ConfigMapVolume.create({ default: timeSliced(2) }, path.join(node.dir, 'config'));
    cleanups.push(async () => {
      await kubelet.stop();
      await node.remove();
    });
    const run = runCli(['plugin', '--config', configMap.dir, '--device-plugin-dir', pluginDir], {
      MOCK_NVML_STATE: node.statePath,
      NVML_LIBRARY: mockNvmlLibraryPath(),
      METRICS_ADDRESS: '',
    });
    const devices = (n: number) => kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === n);
    await devices(2);

    // The key's file replaced by a FIFO behind `..data` (no watched path changes): SIGHUP re-reads it.
    const keyFile = () => configMap.currentDataDir().then((dir) => path.join(dir, 'default'));
    const fifo = path.join(node.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await rename(fifo, await keyFile());
    run.child.kill('SIGHUP');
    const refused = `${path.join(configMap.dir, 'default')}: is a FIFO (named pipe), not a regular file`;
    await expect
      .poll(() => run.lines.some((l) => l.level === 50 && String(l.issues).startsWith(refused)), {
        timeout: 10_000,
      })
      .toBe(true);

    // Edits of the ConfigMap still apply, and so does SIGHUP.
    await configMap.write({ default: timeSliced(5) });
    await devices(5);
    await writeFile(await keyFile(), timeSliced(4));
    run.child.kill('SIGHUP');
    await devices(4);

    const socket = path.join(pluginDir, 'vgpu-gpu.sock');
    expect(existsSync(socket)).toBe(true);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });

  it('exits 2 naming the file and path when the config is invalid', async () => {
    const node = await MockNode.create('single-t4');
    cleanups.push(() => node.remove());
    const file = path.join(node.dir, 'config.yaml');
    await writeFile(
      file,
      'sharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n        replicas: 1\n',
    );
    const run = runCli(['plugin', '--config', file, '--metrics-address', ''], {
      MOCK_NVML_STATE: node.statePath,
      NVML_LIBRARY: mockNvmlLibraryPath(),
    });
    expect((await run.exited).code).toBe(2);
    expect(run.stderr).toContain(
      `${file}: sharing.timeSlicing.resources[0].replicas: number of replicas must be >= 2 (got 1)`,
    );
  });

  it.each([
    [
      'replicas beyond the schema bound (no OOM: nothing is built per replica before the check)',
      100_000_000,
      "sharing.timeSlicing.resources[0].replicas: number of replicas must be <= 32768 (got 100000000): one GPU's replicas must fit in kubelet's 4 MiB device list",
    ],
    [
      "a device list over kubelet's message limit on this node",
      9000,
      'the config cannot apply to this node: sharing.timeSlicing.resources[0]: nvidia.com/gpu would have 72000 devices (8 × 9000 replicas), a ListAndWatch message of 4815120 bytes (4.59 MiB); at most 3670016 bytes (3.5 MiB)',
    ],
  ])('exits 2 at start-up on %s', async (_what, replicas, message) => {
    const node = await MockNode.create('dgx-a100');
    cleanups.push(() => node.remove());
    const file = path.join(node.dir, 'config.yaml');
    await writeFile(
      file,
      `sharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n        replicas: ${replicas}\n`,
    );
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const run = runCli(
      [
        'plugin',
        '--config',
        file,
        '--device-plugin-dir',
        pluginDir,
        '--metrics-address',
        '',
        '--host-sys',
        node.hostPaths.sysfsRoot,
      ],
      {
        MOCK_NVML_STATE: node.statePath,
        NVML_LIBRARY: mockNvmlLibraryPath(),
      },
    );
    expect((await run.exited).code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('with failOnInitError=false and no NVML, idles serving /healthz /readyz /metrics, and stops cleanly', async () => {
    const run = runCli(
      ['plugin', '--nvml-library', '/nonexistent/libnvidia-ml.so.1', '--metrics-address', '127.0.0.1:0'],
      { FAIL_ON_INIT_ERROR: 'false' },
    );
    await expect
      .poll(() => run.lines.some((l) => String(l.msg).includes('failOnInitError=false: idling')), {
        timeout: 10_000,
      })
      .toBe(true);
    const port = run.lines.find((l) => l.msg === 'serving /metrics, /healthz, /readyz')?.port as number;
    const get = (p: string) => fetch(`http://127.0.0.1:${port}${p}`);
    expect((await get('/healthz')).status).toBe(200);
    // Ready: nothing is wrong with the agent on a node without GPUs (a DaemonSet rollout must not stall there).
    const readyz = await get('/readyz');
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toMatch(/^idle: NVML unavailable/);
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toContain('vgpu_agent_idle{reason="nvml_unavailable"} 1');
    expect(metrics).toMatch(/vgpu_agent_build_info\{version="[^"]+",driver_version=""\} 1/);
    // No process collectors while idling: their event-loop-delay sampler is a timer.
    expect(metrics).not.toMatch(/^(nodejs|process)_/m);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });

  it('exits 1 with one clear line when the NVML library is missing', async () => {
    const run = runCli([
      'plugin',
      '--nvml-library',
      '/nonexistent/libnvidia-ml.so.1',
      '--metrics-address',
      '',
    ]);
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('cannot load the NVML library "/nonexistent/libnvidia-ml.so.1"');
  });

  it('exits 2 on a bad flag value', async () => {
    const run = runCli(['plugin', '--mig-strategy', 'sometimes']);
    const { code } = await run.exited;
    expect(code).toBe(2);
    expect(run.stderr).toContain(
      'unknown MIG strategy: sometimes (set by --mig-strategy; expected none, single or mixed)',
    );
  });
});
