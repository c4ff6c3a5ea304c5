/**
 * The one pacing for every loop that waits between failed attempts (kubelet registration, serving a
 * resource again, the Kubernetes watch, the NVML event wait), in the manner of grpc-js's
 * BackoffTimeout: delays grow from `initialMs` by `multiplier` up to `maxMs`, spread by ±`jitter`;
 * reset() starts over; a pause ends early when wake() is called or its AbortSignal fires, so a loop
 * told that things changed (a new kubelet.sock, other devices to watch, stop) does not sleep it out.
 */

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** growth per failure; default 2, and 1 keeps every delay at initialMs */
  multiplier?: number;
  /** fraction each delay is spread by, both ways (0.2: 80–120 %); default 0 */
  jitter?: number;
  /** the pause does not keep the process alive on its own */
  unref?: boolean;
  /** for tests; default Math.random */
  random?: () => number;
}

export class Backoff {
  private nextBaseMs: number;
  private count = 0;
  private wakePause: (() => void) | undefined;

  constructor(private readonly options: BackoffOptions) {
    this.nextBaseMs = options.initialMs;
  }

  /** Delays handed out by next() since the start or the last reset(). */
  get failures(): number {
    return this.count;
  }

  /** The delay after one more failure; the one after it is longer, up to maxMs. */
  next(): number {
    const base = this.nextBaseMs;
    this.nextBaseMs = Math.min(this.options.maxMs, base * (this.options.multiplier ?? 2));
    this.count++;
    const jitter = this.options.jitter ?? 0;
    if (jitter === 0) return base;
    const random = this.options.random ?? Math.random;
    return Math.round(base * (1 - jitter + random() * 2 * jitter));
  }

  /** Things are fine again (or changed): the next delay is initialMs. */
  reset(): void {
    this.nextBaseMs = this.options.initialMs;
    this.count = 0;
  }

  /** Waits `ms` (the next delay by default); ends early on wake() or abort. Never rejects. */
  async pause(ms: number = this.next(), signal?: AbortSignal): Promise<void> {
    await sleep(ms, signal, {
      unref: this.options.unref,
      onStart: (wake) => {
        this.wakePause = wake;
      },
    });
    this.wakePause = undefined;
  }

  /** Ends the pause under way, if any. */
  wake(): void {
    this.wakePause?.();
  }
}

interface SleepOptions {
  unref?: boolean;
  /** receives a function that ends the sleep at once */
  onStart?: (wake: () => void) => void;
}

/** Resolves after `ms`, or at once when `signal` aborts (already aborted: now). Never rejects. */
export function sleep(ms: number, signal?: AbortSignal, options: SleepOptions = {}): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (options.unref) timer.unref();
    signal?.addEventListener('abort', done, { once: true });
    options.onStart?.(done);
  });
}
