/**
 * A real Prometheus (the Debian package `prometheus`) scraping `vgpu-agent monitor` on 127.0.0.1: a
 * per-container memory series read back through Prometheus' HTTP API, and `promtool check metrics`
 * clean on the monitor's /metrics. Skipped, with a note, where `prometheus` is not on PATH; failed
 * there when PROMETHEUS_CHECKS=require (set by .ci/run, which installs it).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mockNvmlLibraryPath } from '../../src/paths.js';
import { MockNode } from '../../src/sim/mock-node.js';
import { killAll, logLine, runCli } from '../helpers/cli-process.js';
import { containerCgroup, FakeHostProc } from '../helpers/fake-proc.js';
import { twoGpuState } from '../helpers/mock-nvml.js';

const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const POD = 'aaaaaaaa-0000-4000-8000-000000000001';
const CTR = 'a1'.repeat(32);
const MIB = 1024 * 1024;

function missingPrometheus(): string | null {
  for (const tool of ['prometheus', 'promtool']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      const why = `${tool} is not on PATH (Debian package "prometheus")`;
      if (process.env.PROMETHEUS_CHECKS === 'require') {
        throw new Error(`PROMETHEUS_CHECKS=require but ${why}`);
      }
      return why;
    }
  }
  return null;
}

const missing = missingPrometheus();
if (missing) console.warn(`Prometheus checks skipped: ${missing}`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await killAll();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A port nothing listens on now (Prometheus cannot be told to pick one and say which). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The monitor on a node where one container uses 1536 MiB of GPU 0; resolves to its port. */
async function startMonitor(): Promise<number> {
  const state = twoGpuState();
  state.devices[0]!.processes = [
    { pid: 101, usedMemoryMiB: 1024, smUtil: 30 },
    { pid: 102, usedMemoryMiB: 512, smUtil: 10 },
  ];
  const node = await MockNode.create(state);
  cleanups.push(() => node.remove());
  const proc = await FakeHostProc.create(node.hostPaths.procRoot);
  await proc.setPidNamespace(true);
  const cgroup = containerCgroup({ podUid: POD, containerId: CTR });
  await proc.add({ pid: 101, cgroup }, { pid: 102, cgroup });
  const run = runCli(
    ['monitor', '--host-proc', proc.root, '--metrics-address', '127.0.0.1:0', '--interval', '500ms'],
    { MOCK_NVML_STATE: node.statePath, NVML_LIBRARY: mockNvmlLibraryPath() },
  );
  const serving = 'serving /metrics, /healthz, /readyz';
  await expect.poll(() => logLine(run, serving), { timeout: 20_000 }).toBeDefined();
  return logLine(run, serving)!.port as number;
}

/** Prometheus scraping `target` every second, from a temporary directory; resolves to its API base. */
async function startPrometheus(target: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-prometheus-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: vgpu-monitor',
    '    honor_labels: true',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n');
  await writeFile(path.join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const child = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  cleanups.push(() => stopProcess(child));
  const base = `http://127.0.0.1:${port}`;
  const ready = async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${stderr}`);
    return (await fetch(`${base}/-/ready`).catch(() => undefined))?.status;
  };
  await expect.poll(ready, { timeout: 30_000 }).toBe(200);
  return base;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

interface VectorResult {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(base: string, promql: string): Promise<VectorResult[]> {
  const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as { status: string; data: { result: VectorResult[] } };
  if (body.status !== 'success') throw new Error(`query ${promql}: ${JSON.stringify(body)}`);
  return body.data.result;
}

describe.skipIf(missing !== null)('the monitor under a real Prometheus', () => {
  it('is scraped, and a per-container memory series reads back through the HTTP API', async () => {
    const monitorPort = await startMonitor();
    const base = await startPrometheus(`127.0.0.1:${monitorPort}`);
    const promql = `vgpu_container_memory_used_bytes{pod_uid="${POD}",uuid="${GPU0}"}`;
    await expect
      .poll(async () => (await query(base, promql)).length, { timeout: 30_000, interval: 500 })
      .toBe(1);
    const [series] = await query(base, promql);
    expect(Number(series!.value[1])).toBe(1536 * MIB);
    expect(series!.metric).toMatchObject({ container_id: CTR, gpu: '0', job: 'vgpu-monitor' });
    const [up] = await query(base, 'up{job="vgpu-monitor"}');
    expect(up!.value[1]).toBe('1');
    // The README's PromQL runs (query() throws on anything but success).
    const perNamespace = await query(base, 'sum by (namespace) (vgpu_container_memory_used_bytes)');
    expect(Number(perNamespace[0]!.value[1])).toBe(1536 * MIB);
    await query(
      base,
      'max_over_time(vgpu_container_sm_utilization_ratio[1h]) == 0 and on (namespace, pod, container, uuid) vgpu_container_memory_used_bytes > 0',
    );
  });

  it('passes promtool check metrics on its /metrics', async () => {
    const monitorPort = await startMonitor();
    const readyz = () => fetch(`http://127.0.0.1:${monitorPort}/readyz`).then((r) => r.status);
    await expect.poll(readyz).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${monitorPort}/metrics`)).text();
    expect(text).toContain('vgpu_container_memory_used_bytes{');
    let problems = '';
    try {
      execFileSync('promtool', ['check', 'metrics'], { input: text, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      const { stdout, stderr } = err as { stdout: Buffer; stderr: Buffer };
      problems = `${stdout}${stderr}`;
    }
    expect(problems).toBe('');
  });
});
