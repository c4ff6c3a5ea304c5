/**
 * An agent command idling until SIGTERM/SIGINT: NVML cannot be loaded and failOnInitError=false (a
 * DaemonSet pod on a node without GPUs or without a driver). It still serves the status endpoint, so
 * the chart probes every pod the same way: /healthz 200 (alive, and idling is what it should do),
 * /metrics with build info and `vgpu_agent_idle`, and /readyz 200 with an `idle: …` body. Ready,
 * because nothing is wrong with the agent there: a 503 would leave the pod unready on every GPU-less
 * node for good, which stalls a DaemonSet's rolling update (each unready pod counts against
 * maxUnavailable) and `helm install --wait` on mixed clusters. Loaded on this path only; it adds no
 * timer (no process-metrics collectors) and closes its socket when the signal comes.
 */
import type { Logger } from 'pino';
import { IdleMetrics } from '../runtime/metrics.js';
import { StatusServer } from '../runtime/status-server.js';
import { waitForSignal } from './signals.js';

export interface IdleOptions {
  logger: Logger;
  /** why NVML is unavailable */
  err: Error;
  /** `:9396`; null serves nothing */
  metricsAddress: string | null;
  agentVersion: string;
}

/** Serves the idle status (when an address is given), waits for a signal, stops serving; the signal. */
export async function idleUntilSignal(options: IdleOptions): Promise<NodeJS.Signals> {
  const { logger, err, metricsAddress } = options;
  const metrics = new IdleMetrics(options.agentVersion, 'nvml_unavailable');
  const server =
    metricsAddress === null
      ? undefined
      : await StatusServer.start({
          address: metricsAddress,
          registry: metrics.registry,
          notReadyReason: () => null,
          readyText: `idle: NVML unavailable (failOnInitError=false): ${err.message}`,
        });
  if (server)
    logger.info({ address: metricsAddress, port: server.port }, 'serving /metrics, /healthz, /readyz');
  // The handlers go in before the line: whoever reads it may send SIGTERM at once.
  const signal = waitForSignal();
  logger.error({ err }, 'NVML unavailable and failOnInitError=false: idling');
  const received = await signal;
  await server?.stop();
  return received;
}
