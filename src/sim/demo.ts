/**
 * The demo transcript: the plugin and the monitor on a simulated GPU node (mock NVML through the real
 * koffi binding, the kubelet simulator, a ConfigMap volume updated the way kubelet does it, a generated
 * host /proc), narrated for a newcomer.
 * This file sets the node up, runs the story's steps (demo-steps.ts) and tears everything down; a
 * failing step is reported as a DemoStepError naming the step.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { LivePlugin } from '../plugin/live-plugin.js';
import { ConfigMapVolume } from './configmap-volume.js';
import { DeferredKubeClient } from './deferred-kube-client.js';
import { startDemoMonitor } from './demo-monitor.js';
import { DEFAULT_CONFIG, DEMO_STEPS, type DemoContext, type DemoStep } from './demo-steps.js';
import { KubeletSimulator } from './kubelet.js';
import { MockNode } from './mock-node.js';

export interface DemoOptions {
  node: string;
  /** seconds to keep running at the end; 0 = until SIGINT/SIGTERM */
  durationSeconds: number;
  out: NodeJS.WritableStream;
  logger: Logger;
  agentVersion: string;
}

/** A step of the story failed; `step` is its number in the transcript. */
export class DemoStepError extends Error {
  override readonly name = 'DemoStepError';
  constructor(
    readonly step: number,
    stepName: string,
    cause: unknown,
  ) {
    super(`step ${step} (${stepName}) failed: ${errorMessage(cause)}`, { cause });
  }
}

type Cleanup = () => Promise<void>;

export async function runDemo(options: DemoOptions): Promise<void> {
  const say = (line = '') => options.out.write(`${line}\n`);
  const cleanups: Cleanup[] = [];
  try {
    const ctx = await startSimulatedNode(options, say, cleanups).catch((err: unknown) => {
      throw new Error(`cannot start the simulated "${options.node}" node: ${errorMessage(err)}`, {
        cause: err,
      });
    });
    await runSteps(DEMO_STEPS, ctx);
    await keepRunning(options.durationSeconds, say);
    say('Stopping: sockets removed, temp files deleted.');
  } finally {
    await tearDown(cleanups, options.logger);
  }
}

/** Runs the steps in order, numbering them; a step that does not fit the node says why in one line. */
export async function runSteps(steps: readonly DemoStep[], ctx: DemoContext): Promise<void> {
  for (const [i, step] of steps.entries()) {
    const number = i + 1;
    try {
      const skip = step.skipReason?.(ctx) ?? null;
      if (skip !== null) {
        ctx.say(`${number}. ${step.heading(ctx)}: skipped, ${skip}`);
      } else {
        ctx.say(`${number}. ${step.heading(ctx)}:`);
        await step.run(ctx);
      }
    } catch (err) {
      throw new DemoStepError(number, step.name, err);
    }
    ctx.say();
  }
}

/**
 * Mock node, kubelet simulator, ConfigMap and agent, wired as in production. Each piece pushes its
 * teardown onto `cleanups` as soon as it exists, so a failure half-way leaves nothing behind.
 */
async function startSimulatedNode(
  options: DemoOptions,
  say: (line?: string) => void,
  cleanups: Cleanup[],
): Promise<DemoContext> {
  const node = await MockNode.create(options.node);
  cleanups.push(() => node.remove());
  node.exportEnv();
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const configMap = await ConfigMapVolume.create({ default: DEFAULT_CONFIG }, path.join(node.dir, 'config'));
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  cleanups.push(() => kubelet.stop());

  say(
    `vgpu-agent demo: the device plugin and the monitor on a simulated "${options.node}" node (no GPU needed)`,
  );
  say(`  mock NVML state ${node.statePath}`);
  say(`  kubelet simulator on ${kubelet.socketPath}`);

  // Connected to the simulated API server by the HAMi step; nothing before it calls the API.
  const api = { client: new DeferredKubeClient(), nodeName: options.node };
  const plugin = await LivePlugin.start({
    config: { follow: { path: configMap.dir, logger: options.logger, debounceMs: 100 } },
    logger: options.logger,
    nvmlLibrary: node.libraryPath,
    hostPaths: node.hostPaths,
    agentVersion: options.agentVersion,
    pluginDir,
    metricsAddress: null,
    env: {},
    tuning: { healthProbeIntervalMs: 500 },
    kube: api,
  });
  cleanups.push(() => plugin.stop());
  const monitor = await startDemoMonitor(node, options.logger, options.agentVersion);
  cleanups.push(() => monitor.monitor.stop());
  say(`  monitor serving ${monitor.url}`);
  say();
  const source = plugin.config.source!;
  return {
    say,
    node,
    plugin,
    monitor,
    kubelet,
    configMap,
    source,
    migStrategy: 'none',
    pods: [],
    podsStarted: 0,
    api,
    // first in the list: torn down after the agent, which may still be talking to it
    atExit: (cleanup) => cleanups.unshift(cleanup),
  };
}

/** Runs every teardown even if one fails, so a failed step still removes sockets and temp files. */
async function tearDown(cleanups: Cleanup[], logger: Logger): Promise<void> {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (err) {
      logger.warn({ err }, 'demo: cleaning up the simulated node failed');
    }
  }
}

async function keepRunning(durationSeconds: number, say: (line?: string) => void): Promise<void> {
  if (durationSeconds > 0) {
    say(`Running for ${durationSeconds} s more.`);
    await new Promise((resolve) => setTimeout(resolve, durationSeconds * 1000));
    return;
  }
  // Listen before saying so: whoever reads the line may press Ctrl+C at once.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  say('The agent keeps running on the simulated node. Ctrl+C to stop (or pass --duration <seconds>).');
  await stopped;
}
