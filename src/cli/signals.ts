/** How a long-running command (plugin, monitor) waits for SIGTERM/SIGINT and bounds its stop. */
import type { Logger } from 'pino';
import { ExitCode } from './command.js';

export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    // Signal handlers do not keep Node alive; when idling (failOnInitError=false) nothing else does.
    const keepAlive = setInterval(() => {}, 1 << 30);
    const done = (signal: NodeJS.Signals) => {
      clearInterval(keepAlive);
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(signal);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}

/** Runs `stop`; if it has not finished after `deadlineMs`, logs so and exits the process. */
export async function stopWithin(
  deadlineMs: number,
  logger: Logger,
  stop: () => Promise<void>,
): Promise<void> {
  const deadline = setTimeout(() => {
    logger.error('stop took too long: exiting');
    process.exit(ExitCode.OK);
  }, deadlineMs);
  deadline.unref();
  try {
    await stop();
  } finally {
    clearTimeout(deadline);
  }
}
