/**
 * A warning that can recur on every retry (an NVML event wait failing once a second for as long as a
 * fault lasts): logged at most once per interval, and the next line says how many repeats were held
 * back, so a lasting fault costs one line a minute instead of one a second, and no count is lost.
 */
import type { Logger } from 'pino';

export class ThrottledWarning {
  private lastLoggedMs: number | undefined;
  private heldBack = 0;

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const nowMs = this.now();
    if (this.lastLoggedMs !== undefined && nowMs - this.lastLoggedMs < this.intervalMs) {
      this.heldBack++;
      return;
    }
    const repeats = this.heldBack > 0 ? { repeatsNotLogged: this.heldBack } : {};
    this.logger.warn({ ...fields, ...repeats }, this.message);
    this.lastLoggedMs = nowMs;
    this.heldBack = 0;
  }
}
