/** One logger for the whole agent: JSON lines by default (for log pipelines), `pretty` for people. */
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

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
    const stream = pretty({
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
