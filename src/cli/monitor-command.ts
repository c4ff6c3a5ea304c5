/**
 * `vgpu-agent monitor`: flags → the monitor on the node runtime (LiveMonitor) → run until
 * SIGTERM/SIGINT, then stop collecting, close HTTP and shut NVML down. Bad flags are usage errors
 * (exit 2) before NVML is touched.
 */
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import { LiveMonitor } from '../monitor/live-monitor.js';
import { NvmlLibraryError } from '../nvml/errors.js';
import { parseListenAddress } from '../runtime/status-server.js';
import { type Command, ExitCode } from './command.js';
import { hostPathsFrom, loggingOptions, nvmlOptions } from './common-options.js';
import { checkMonitorSourceFlags, monitorSourceOptions, openMonitorSources } from './monitor-sources.js';
import { type OptionSpec, UsageError } from './options.js';
import { stopWithin, waitForSignal } from './signals.js';
import { agentVersion } from './version.js';

/** SIGTERM must end the process within 2 s even if something hangs. */
const STOP_DEADLINE_MS = 1800;
/** NVML's own sample periods are 1/6 s to 1 s: collecting faster only repeats them. */
const MIN_INTERVAL_MS = 100;
const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** The shared NVML flags, with --host-proc described for what the monitor reads there. */
const monitorNvmlOptions: OptionSpec[] = nvmlOptions.map((spec) =>
  spec.flag === 'host-proc'
    ? {
        ...spec,
        description: "Host's /proc: each GPU process's cgroup (mount it at /host/proc, with hostPID: true)",
      }
    : spec,
);

export const monitorCommand: Command = {
  name: 'monitor',
  options: [
    ...loggingOptions,
    ...monitorNvmlOptions,
    {
      flag: 'node-name',
      env: 'NODE_NAME',
      type: 'string',
      description: 'This node (for logs and labels; the pod watch needs it)',
    },
    {
      flag: 'interval',
      env: 'MONITOR_INTERVAL',
      type: 'string',
      default: '5s',
      description:
        'Collection interval: 5s, 500ms, 1m (a bare number is seconds); /metrics serves the last one',
    },
    {
      flag: 'metrics-address',
      env: 'METRICS_ADDRESS',
      type: 'string',
      default: ':9394',
      description: 'Listen address of /metrics, /healthz, /readyz',
    },
    {
      flag: 'fail-on-init-error',
      env: 'FAIL_ON_INIT_ERROR',
      type: 'boolean',
      default: true,
      description: "Exit 1 when NVML cannot be loaded; false: say so and idle (the plugin's failOnInitError)",
    },
    ...monitorSourceOptions,
  ],
  async run(args, io) {
    const v = args.values;
    const intervalMs = parseInterval(v.interval as string);
    checkMonitorSourceFlags(v, parseDuration);
    const metricsAddress = checkedListenAddress(v['metrics-address'] as string);
    const nodeName = v['node-name'] as string | undefined;
    const root = createLogger({ level: v['log-level'] as LogLevel, format: v['log-format'] as LogFormat });
    const logger = nodeName ? root.child({ node: nodeName }) : root;
    let monitor: LiveMonitor;
    try {
      monitor = await LiveMonitor.start({
        logger,
        nvmlLibrary: v['nvml-library'] as string,
        hostPaths: hostPathsFrom(v),
        agentVersion: agentVersion(),
        metricsAddress,
        intervalMs,
        env: io.env,
        openSources: (runtime) =>
          openMonitorSources({ values: v, env: io.env, runtime, intervalMs, parseDuration }),
      });
    } catch (err) {
      if (!(err instanceof NvmlLibraryError) || v['fail-on-init-error']) throw err;
      // As the plugin: a node without a driver keeps the pod running, idle, still serving its status.
      const { idleUntilSignal } = await import('./idle.js');
      const signal = await idleUntilSignal({ logger, err, metricsAddress, agentVersion: agentVersion() });
      logger.info({ signal }, 'stopped');
      return ExitCode.OK;
    }
    logger.info({ intervalMs, hostProc: hostPathsFrom(v).procRoot }, 'monitor collecting');
    const signal = await waitForSignal();
    logger.info({ signal }, 'stopping');
    await stopWithin(STOP_DEADLINE_MS, logger, () => monitor.stop());
    logger.info('stopped');
    return ExitCode.OK;
  },
};

/** `5s`, `500ms`, `1m`, `2.5s`, or a bare number of seconds, in ms (at least MIN_INTERVAL_MS). */
export function parseInterval(text: string): number {
  const ms = parseDuration(text, 'interval');
  if (ms < MIN_INTERVAL_MS) {
    throw new UsageError(
      `--interval (MONITOR_INTERVAL): ${text} is below the minimum of ${MIN_INTERVAL_MS}ms`,
    );
  }
  return ms;
}

const FLAG_VARIABLES: Record<string, string> = {
  interval: 'MONITOR_INTERVAL',
  'split-gc-grace': 'SPLIT_GC_GRACE',
};

/** `5s`, `500ms`, `1m`, `2.5s`, or a bare number of seconds, in ms; a usage error names the flag. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) {
    const variable = FLAG_VARIABLES[flag];
    throw new UsageError(
      `--${flag}${variable ? ` (${variable})` : ''}: "${text}" is not a duration (e.g. 5s, 500ms, 1m; a bare number is seconds)`,
    );
  }
  return Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 's']!;
}

function checkedListenAddress(address: string): string {
  if (address.trim() === '') {
    throw new UsageError(
      '--metrics-address (METRICS_ADDRESS) is empty: the monitor exists to serve /metrics',
    );
  }
  try {
    parseListenAddress(address);
  } catch (err) {
    throw new UsageError(`--metrics-address (METRICS_ADDRESS): ${(err as Error).message}`);
  }
  return address;
}
