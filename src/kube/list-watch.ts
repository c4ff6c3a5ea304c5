/**
 * The one list/watch loop of the agent's Kubernetes client, as client-go's reflector runs it: list
 * (or GET one object), then watch from the resourceVersion that list returned, resuming each new watch
 * from the last event or bookmark; list again when that version has expired (410 Gone); retry with
 * capped, jittered exponential backoff while the API is unreachable. The token is re-read by the
 * client on every request. It never throws once started; it logs the first failure of a streak and
 * the recovery. The node-label watch runs on it; a watch of the pods on this node needs only a source
 * (a list and a watch of `/api/v1/pods` selected by `spec.nodeName`).
 */
import type { Logger } from 'pino';
import { Backoff } from '../backoff.js';
import { errorMessage } from '../errors.js';
import { KubeApiError, type KubeObject, type ObjectEvent, type WatchEvent } from './client.js';

export interface ListWatchSource<T> {
  /** The objects now, and the resourceVersion the watch resumes from. */
  list(signal: AbortSignal): Promise<{ objects: T[]; resourceVersion: string }>;
  watch(request: {
    resourceVersion: string;
    timeoutSeconds: number;
    signal: AbortSignal;
  }): Promise<AsyncIterable<WatchEvent<T>>>;
}

export interface ListWatchOptions<T> {
  source: ListWatchSource<T>;
  /** What is followed, in log lines and errors: `node node-a`, `pods on node node-a`. */
  description: string;
  /** Names the watch in errors and debug lines: `node watch`. */
  watchName: string;
  /** Every list, with all the objects (a relist replaces what was known). */
  onList: (objects: T[]) => void;
  /** Each change after a list. */
  onEvent: (event: ObjectEvent<T>) => void;
  logger: Logger;
  /** backoff between failed attempts: doubles from initialMs (1 s) up to maxMs (30 s), ±20% jitter */
  retry?: { initialMs?: number; maxMs?: number };
  /** how long the API server keeps one watch open; default 5–10 min, spread like client-go's */
  watchTimeoutSeconds?: number;
}

/** What one pass of the loop got to, for deciding how to go on after a failure. */
interface Pass {
  listed: boolean;
  watchOpenedAt: number | undefined;
}

export class ListWatch<T extends KubeObject> {
  private readonly abort = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private readonly backoff: Backoff;
  /** where the watch resumes: from the last list, event or bookmark; undefined = list again */
  private resourceVersion: string | undefined;

  constructor(private readonly options: ListWatchOptions<T>) {
    this.backoff = new Backoff({
      initialMs: options.retry?.initialMs ?? 1000,
      maxMs: options.retry?.maxMs ?? 30_000,
      jitter: 0.2,
    });
  }

  /** Starts the loop; resolves after the first attempt to list, successful or not. */
  start(): Promise<void> {
    return new Promise((firstAttemptDone) => {
      this.loop = this.run(firstAttemptDone);
    });
  }

  /** Ends the watch and the retries; no callback runs once this resolves. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(firstAttemptDone: () => void): Promise<void> {
    const { signal } = this.abort;
    while (!signal.aborted) {
      const pass: Pass = { listed: false, watchOpenedAt: undefined };
      try {
        if (this.resourceVersion === undefined) {
          await this.list(signal);
          pass.listed = true;
          firstAttemptDone();
        }
        await this.watch(signal, pass);
        // The server ended the watch (its timeout): resume from where it stopped.
      } catch (error) {
        if (signal.aborted) break;
        firstAttemptDone();
        if (!this.retriesAtOnce(error, pass)) await this.failed(error, signal);
      }
    }
    firstAttemptDone();
  }

  private async list(signal: AbortSignal): Promise<void> {
    const { objects, resourceVersion } = await this.options.source.list(signal);
    if (!signal.aborted) this.options.onList(objects);
    this.resourceVersion = resourceVersion;
    this.recovered();
  }

  /** Hands the watch's events on until the server ends it. An ERROR event (410 Gone…) is thrown. */
  private async watch(signal: AbortSignal, pass: Pass): Promise<void> {
    const events = await this.options.source.watch({
      resourceVersion: this.resourceVersion!,
      timeoutSeconds: this.options.watchTimeoutSeconds ?? Math.round(300 * (1 + Math.random())),
      signal,
    });
    pass.watchOpenedAt = Date.now();
    this.recovered();
    for await (const event of events) {
      if (event.type === 'ERROR') {
        const status = event.object;
        const message = `${this.options.watchName}: ${status.message ?? 'error event'}`;
        throw new KubeApiError(status.code ?? 0, message, status.reason);
      }
      this.resourceVersion = event.object.metadata.resourceVersion || this.resourceVersion;
      if (event.type !== 'BOOKMARK' && !signal.aborted) this.options.onEvent(event);
    }
  }

  /** An expired version means listing again; a watch that ran a while and dropped reconnects. */
  private retriesAtOnce(error: unknown, pass: Pass): boolean {
    const { logger, watchName, description } = this.options;
    if (isGone(error)) {
      this.resourceVersion = undefined;
      // Gone right after a fresh list would loop without a pause: then it counts as a failure.
      if (!pass.listed) {
        logger.debug(`${watchName} expired (410 Gone): reading ${description} again`);
        return true;
      }
    }
    // A watch dropped after a while (API server restart, idle proxy) is not a failure of the API.
    const initialMs = this.options.retry?.initialMs ?? 1000;
    if (pass.watchOpenedAt !== undefined && Date.now() - pass.watchOpenedAt >= initialMs) {
      logger.debug({ err: errorMessage(error) }, `${watchName} dropped: reconnecting`);
      return true;
    }
    return false;
  }

  private async failed(error: unknown, signal: AbortSignal): Promise<void> {
    const delayMs = this.backoff.next();
    const failures = this.backoff.failures;
    const { logger, description } = this.options;
    // The API's answer as text: a stack would only say where in the client it surfaced.
    if (failures === 1) {
      logger.warn(
        { err: errorMessage(error) },
        `cannot read ${description} from the Kubernetes API; retrying with backoff (next log when it recovers)`,
      );
    } else {
      logger.debug({ err: errorMessage(error), failures }, 'Kubernetes API still failing');
    }
    await this.backoff.pause(delayMs, signal);
  }

  private recovered(): void {
    const failures = this.backoff.failures;
    if (failures === 0) return;
    this.options.logger.info(
      { failures },
      `Kubernetes API reachable again after ${failures} failed attempt(s)`,
    );
    this.backoff.reset();
  }
}

function isGone(error: unknown): boolean {
  return error instanceof KubeApiError && (error.status === 410 || error.reason === 'Expired');
}
