/**
 * grpc-js logs through a process-wide logger of its own, by default straight to stderr as `E ...`
 * text lines. Routed through pino instead, every line the agent writes is JSON. Which lines grpc-js
 * produces stays grpc-js's choice (errors only, unless GRPC_VERBOSITY / GRPC_TRACE ask for more).
 */
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

export function routeGrpcLogs(logger: Logger): void {
  const log = logger.child({ component: 'grpc-js' });
  grpc.setLogger({
    error: (...args: unknown[]) => log.error(format(...args)),
    info: (...args: unknown[]) => log.info(format(...args)),
    debug: (...args: unknown[]) => log.debug(format(...args)),
  });
}
