/** One logger for the whole agent: JSON lines by default (for log pipelines), `pretty` for people. */
import { createRequire } from 'node:module';
import { type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';

/** pino-pretty costs ~10 MiB of memory: loaded only when someone asks for pretty logs. */
function loadPretty(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
}

export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stdout by default (tests pass a collecting stream). */
  destination?: NodeJS.WritableStream;
  name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = { level: options.level ?? 'info', name: options.name ?? 'vgpu-agent' };
  if (options.format === 'pretty') {
    // Synchronous on purpose: no transport worker, and the last lines before an exit are not lost.
    const stream = loadPretty()({
      sync: true,
      colorize: false,
      ignore: 'pid,hostname',
      translateTime: 'SYS:HH:MM:ss.l',
      destination: options.destination ?? process.stdout,
    });
    return pino(base, stream);
  }
  return pino(base, options.destination ?? pino.destination({ sync: true }));
}

export type { Logger };
