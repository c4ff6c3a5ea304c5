/**
 * `vgpu-agent demo` as a newcomer runs it (the built CLI, the mock NVML through koffi, real Unix
 * sockets), on every simulated node in native/mock-nvml/nodes: it must tell the story that fits the
 * node, end cleanly on Ctrl+C, and fail with one line, never a stack trace.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import type { MockDevice, MockNvmlState } from '../../src/sim/mock-node.js';

const CLI = path.join(packageRoot(), 'dist/cli/main.js');
const NODES_DIR = path.join(packageRoot(), 'native/mock-nvml/nodes');
const NODES = readdirSync(NODES_DIR)
  .filter((file) => file.endsWith('.json'))
  .map((file) => path.basename(file, '.json'));

interface DemoRun {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: DemoRun[] = [];
afterEach(async () => {
  for (const run of running.splice(0)) {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await run.exited;
  }
});

function startDemo(node: string, env: NodeJS.ProcessEnv = {}): DemoRun {
  const child = spawn(process.execPath, [CLI, 'demo', '--node', node], {
    env: { PATH: process.env.PATH, ...env },
  });
  const run: DemoRun = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    run.stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    run.stderr += chunk.toString();
  });
  running.push(run);
  return run;
}

/** Runs the whole transcript, then presses Ctrl+C as the last line invites. */
async function demoTranscript(
  node: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = startDemo(node);
  let exitedEarly = false;
  void run.exited.then(() => {
    exitedEarly = true;
  });
  await expect
    .poll(() => exitedEarly || run.stdout.includes('Ctrl+C to stop'), { timeout: 60_000, interval: 50 })
    .toBe(true);
  run.child.kill('SIGINT');
  const { code } = await run.exited;
  return { code, stdout: run.stdout, stderr: run.stderr };
}

function migProfiles(state: MockNvmlState): string[] {
  const migGpus = state.devices.filter((d) => d.migEnabled && (d.migDevices ?? []).length > 0);
  return [...new Set(migGpus.flatMap((d) => d.migDevices!.map((m) => m.profile)))];
}

function wholeGpus(state: MockNvmlState): MockDevice[] {
  return state.devices.filter((d) => !d.migEnabled);
}

/** Step `n` of the transcript, from its heading to the next step's. */
function stepSection(stdout: string, n: number): string {
  const start = stdout.search(new RegExp(`^${n}\\. `, 'm'));
  if (start < 0) return '';
  const from = stdout.slice(start);
  const next = from.slice(1).search(/^\d+\. /m);
  return next < 0 ? from : from.slice(0, next + 1);
}

describe('vgpu-agent demo', () => {
  it('has a MIG node and a single-GPU node among the simulated nodes', () => {
    const states = NODES.map(
      (node) => JSON.parse(readFileSync(path.join(NODES_DIR, `${node}.json`), 'utf8')) as MockNvmlState,
    );
    expect(states.some((s) => migProfiles(s).length > 0)).toBe(true);
    expect(states.some((s) => s.devices.length === 1 && wholeGpus(s).length === 1)).toBe(true);
  });

  it.each(NODES)(
    'tells the %s node its own story and exits 0 on Ctrl+C',
    { timeout: 90_000 },
    async (node) => {
      const state = JSON.parse(readFileSync(path.join(NODES_DIR, `${node}.json`), 'utf8')) as MockNvmlState;
      const { code, stdout, stderr } = await demoTranscript(node);

      expect(stderr, stdout).toBe('');
      expect(code, stdout).toBe(0);
      expect(stdout).not.toMatch(/^\s+at /m);
      expect(stdout).toContain('Stopping: sockets removed, temp files deleted.');
      expect(stdout).toMatch(/^1\. What NVML reports/m);
      expect(stdout).toMatch(/^9\. A broken edit \(replicas: 1\) is rejected/m);
      expect(stdout).toContain('number of replicas must be >= 2 (got 1)');

      // MIG: each profile is its own resource, and a pod gets a MIG device of each.
      const profiles = migProfiles(state);
      if (profiles.length === 0) expect(stdout).toContain('skipped, no GPU on this node is in MIG mode');
      for (const profile of profiles) {
        expect(stdout).toMatch(new RegExp(`^ {3}nvidia\\.com/mig-${profile}\\s+\\d+ devices`, 'm'));
        expect(stdout).toMatch(new RegExp(`× nvidia\\.com/mig-${profile} → MIG \\d+:\\d+ ${profile}`));
        expect(stdout).toMatch(/env NVIDIA_VISIBLE_DEVICES=MIG-/);
      }

      // Time-slicing: every resource shows 4 replicas per device; split: a slice gets half a GPU's memory.
      const whole = wholeGpus(state);
      expect(stdout).toMatch(
        new RegExp(`^ {3}nvidia\\.com/gpu\\s+${whole.length * 4} devices, ${whole.length * 4} healthy`, 'm'),
      );
      const halves = whole.map((d) => `CUDA_DEVICE_MEMORY_LIMIT_0=${d.memoryTotalMiB! / 2}m`);
      expect(
        halves.some((limit) => stdout.includes(limit)),
        stdout,
      ).toBe(true);

      // One GPU: whole, a second pod waits; time-sliced, two pods share it.
      if (state.devices.length === 1 && whole.length === 1) {
        expect(stdout).toMatch(/pod \S+: 1 × nvidia\.com\/gpu → GPU 0\n/);
        expect(stdout).toMatch(/pod \S+: 1 × nvidia\.com\/gpu → none free: the pod stays Pending/);
        expect(stdout).toMatch(/→ GPU-[^:]+::0 \(GPU 0\)[\s\S]*→ GPU-[^:]+::1 \(GPU 0\)/);
      }

      // HAMi's scheduler mode: the pod asking for gpumem 3000 / gpucores 30 gets exactly those limits in
      // the plugin's Allocate answer, on the GPU the scheduler wrote; bind phase success, lock released.
      const hami = stepSection(stdout, 7);
      if (profiles.length > 0) {
        expect(hami).toMatch(/^7\. Edited to sharing\.hami[^\n]*: skipped, [^\n]*migStrategy must be none/);
      } else {
        const decision = /hami\.io\/vgpu-devices-to-allocate=(GPU-[0-9a-f-]+),NVIDIA,3000,30:;\n/.exec(hami);
        expect(decision, hami).not.toBeNull();
        expect(whole.map((d) => d.uuid)).toContain(decision![1]);
        expect(hami).toMatch(/hami\.io\/mutex\.lock=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,default,\S+\n/);
        const answer = hami.slice(hami.indexOf("The plugin's Allocate answers:"));
        expect(answer).toContain(`env NVIDIA_VISIBLE_DEVICES=${decision![1]}\n`);
        expect(answer).toContain('env CUDA_DEVICE_MEMORY_LIMIT_0=3000m\n');
        expect(answer).toContain('env CUDA_DEVICE_SM_LIMIT=30\n');
        expect(answer).toContain('mount /etc/ld.so.preload (read-only)');
        expect(answer).toMatch(/pod hami\.io\/bind-phase=success, hami\.io\/vgpu-devices-to-allocate=;;/);
        expect(answer).toContain('node lock released');
      }

      // An Xid makes something Unhealthy.
      expect(stdout).toMatch(/Xid 79[^\n]*\n(?: {3}[^\n]*\n)*? {3}nvidia\.com\/[^\n]*\(Unhealthy: /);

      // The monitor: what Prometheus scrapes per container, and where.
      expect(stdout).toMatch(
        /^10\. The monitor on the same node: .* from http:\/\/127\.0\.0\.1:\d+\/metrics:$/m,
      );
      const series = (name: string, labels: string, value: number) =>
        new RegExp(`^ {5}${name}\\{[^}\\n]*${labels}[^}\\n]*\\} ${value}$`, 'm');
      const gib = 1024 ** 3;
      expect(stdout).toMatch(
        series('vgpu_container_memory_used_bytes', 'namespace="ml",pod="train-a",container="main"', 8 * gib),
      );
      expect(stdout).toMatch(series('vgpu_container_memory_used_bytes', 'pod="infer-b"', 4 * gib));
      expect(stdout).toMatch(series('vgpu_container_sm_utilization_ratio', 'pod="train-a"', 0.4));
      expect(stdout).toMatch(
        series(
          'vgpu_unallocated_memory_used_bytes',
          'pod="notebook-c",container="jupyter",kind="container"',
          3 * gib,
        ),
      );
      expect(stdout).toMatch(series('vgpu_unallocated_memory_used_bytes', 'kind="host"', 0.5 * gib));
      expect(stdout).toMatch(series('vgpu_gpu_xid_errors_total', 'xid="79"', 1));
      expect(stdout).toMatch(series('vgpu_gpu_healthy', '', 0));
      if (profiles.length > 0) {
        expect(stdout).toMatch(
          series('vgpu_container_memory_used_bytes', 'gpu_instance_id="\\d+"[^}]*pod="eval-d"', gib),
        );
      }
    },
  );

  it('reports a failure in one line, without a stack trace, and exits 1', async () => {
    // A temp directory under a regular file: nothing can create it (Node 24's compile cache creates a
    // merely missing TMPDIR before the demo would fail on it).
    const run = startDemo(NODES[0]!, { TMPDIR: path.join(packageRoot(), 'package.json', 'tmp') });
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.stderr).toMatch(/^vgpu-agent demo: cannot start the simulated "[^"]+" node: ENOTDIR[^\n]*\n$/);
  });
});
