/**
 * What `vgpu-agent plugin` loads to register, traced by loader hooks in the real process: only the
 * modules its flags use. Not the monitor, the simulator or pretty logs; not the Kubernetes client
 * without --kube-api; not proto-loader (the kubelet API comes from a generated descriptor).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mockNvmlLibraryPath, packageRoot } from '../../src/paths.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';
import { MockNode } from '../../src/sim/mock-node.js';

const CLI = path.join(packageRoot(), 'dist/cli/main.js');
const TRACE = path.join(packageRoot(), 'test/helpers/module-trace.mjs');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The module URLs the plugin loaded by the time kubelet lists its devices. */
async function modulesLoadedToRegister(): Promise<string[]> {
  const node = await MockNode.create('single-t4');
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  const traceDir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-module-trace-'));
  const traceFile = path.join(traceDir, 'modules');
  const args = ['--import', TRACE, CLI, 'plugin', '--device-plugin-dir', pluginDir, '--metrics-address', ''];
  const child = spawn(process.execPath, args, {
    env: {
      PATH: process.env.PATH,
      MODULE_TRACE_FILE: traceFile,
      MOCK_NVML_STATE: node.statePath,
      NVML_LIBRARY: mockNvmlLibraryPath(),
    },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
    await kubelet.stop();
    await node.remove();
    await rm(traceDir, { recursive: true, force: true });
  });
  await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 1, { timeoutMs: 10_000 });
  return (await readFile(traceFile, 'utf8')).split('\n').filter(Boolean);
}

describe('vgpu-agent plugin loads only what it uses', () => {
  it('registers without the monitor, the simulator, the Kubernetes client, proto-loader or pino-pretty', async () => {
    const loaded = await modulesLoadedToRegister();
    const root = `file://${packageRoot()}/dist/`;
    const own = loaded.filter((url) => url.startsWith(root)).map((url) => url.slice(root.length));
    expect(own).toContain('plugin/agent.js');
    // kube/names.js is pure name validation, which the config uses; kube/errors.js the API's error class,
    // which HAMi mode's allocator recognises.
    expect(own.filter((m) => /^(monitor|sim)\/|^kube\/(?!names\.js|errors\.js)/.test(m))).toEqual([]);
    expect(loaded.filter((url) => /node_modules\/(@grpc\/proto-loader|pino-pretty)\//.test(url))).toEqual([]);
  });
});

describe('vgpu-agent plugin --kube-api', () => {
  it('loads the Kubernetes client when asked, and outside a cluster says so with exit code 2', async () => {
    const child = spawn(process.execPath, [CLI, 'plugin', '--kube-api', '--node-name', 'n1'], {
      env: { PATH: process.env.PATH },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(stderr).toMatch(/vgpu-agent plugin: --kube-api: /);
    expect(code).toBe(2);
  });
});
