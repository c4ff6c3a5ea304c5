/**
 * Registration of one device plugin endpoint with kubelet, apart from the gRPC server that serves it.
 * One registration loop at a time: a kubelet restart seen while it runs wakes it (skipping its pause)
 * instead of starting another, and stop() cancels a Register call in flight instead of waiting out its
 * deadline, so shutdown is not held up by a kubelet that never answers.
 *
 * Each attempt checks that kubelet.sock accepts a connection, then sends Register on a channel of its
 * own, closed afterwards. A fresh channel has no reconnect backoff to wait out (a long-lived one that
 * failed while kubelet was away refuses calls until its backoff ends), and the check keeps channels
 * away from a missing or dead socket: grpc-js reconnects the subchannel of a *closed* channel that was
 * in backoff and then holds that connection open for good.
 */
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Backoff } from '../backoff.js';
import {
  type DevicePluginOptions,
  KUBELET_API_VERSION,
  KUBELET_SOCKET_NAME,
  RegistrationClient,
  unixTarget,
} from '../kubelet-api/proto.js';
import type { PluginMetrics } from './metrics.js';
import { directoryId, socketId } from './socket-id.js';

/** Timing of registration; the defaults suit kubelet, tests shorten them. */
export interface RegistrationTuning {
  /** deadline of one Register call (kubelet dials back within it) */
  registerTimeoutMs?: number;
  /** first and longest pause between attempts */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export interface RegistrationOptions extends RegistrationTuning {
  /** kubelet's device plugin directory, holding kubelet.sock */
  pluginDir: string;
  /** the plugin's socket file name inside pluginDir, which kubelet dials back */
  endpoint: string;
  resourceName: string;
  /** a logger already bound to the resource */
  logger: Logger;
  metrics: PluginMetrics;
}

const ONE_DAY_MS = 86_400_000;

/** What the plugin offers kubelet: no PreStartContainer, a GetPreferredAllocation worth calling. */
export const PLUGIN_OPTIONS: DevicePluginOptions = {
  pre_start_required: false,
  get_preferred_allocation_available: true,
};

/** A channel used for one Register call and closed: it must never reconnect on its own. */
const ONE_SHOT_CHANNEL: grpc.ChannelOptions = {
  // Its own subchannel: none shared with (nor backoff inherited from) an earlier attempt's channel.
  'grpc.use_local_subchannel_pool': 1,
  // After a failure a subchannel reconnects when its backoff ends, even once its channel is closed.
  'grpc.initial_reconnect_backoff_ms': ONE_DAY_MS,
  'grpc.max_reconnect_backoff_ms': ONE_DAY_MS,
};

interface Loop {
  abort: AbortController;
  /** its pause between attempts, woken when kubelet changes */
  backoff: Backoff;
  done: Promise<void>;
}

export class KubeletRegistration {
  private readonly kubeletSocket: string;
  /** identity of the kubelet.sock the last successful Register went to; null when not registered */
  private registeredWith: string | null = null;
  private loop: Loop | undefined;
  /** kubelet changed while the loop ran: it skips its pause and starts over from the first delay */
  private kicked = false;
  /** the kubelet.sock reported while the current attempt ran, if any */
  private reportedDuringAttempt: string | undefined;

  constructor(private readonly options: RegistrationOptions) {
    this.kubeletSocket = path.join(options.pluginDir, KUBELET_SOCKET_NAME);
  }

  get registered(): boolean {
    return this.registeredWith !== null;
  }

  /**
   * Registers unless already registered with the kubelet.sock identified by `kubeletSocketId`. A loop
   * already running is woken instead of starting another (each attempt reads kubelet.sock afresh).
   */
  ensure(kubeletSocketId?: string): void {
    if (kubeletSocketId !== undefined && this.registeredWith === kubeletSocketId) return;
    if (this.loop) {
      this.kicked = true;
      this.reportedDuringAttempt = kubeletSocketId;
      this.loop.backoff.wake();
      return;
    }
    this.setRegistered(null);
    const backoff = new Backoff({
      initialMs: this.options.retryInitialMs ?? 250,
      maxMs: this.options.retryMaxMs ?? 5000,
    });
    const loop: Loop = { abort: new AbortController(), backoff, done: Promise.resolve() };
    this.loop = loop;
    loop.done = this.run(loop);
  }

  /** Ends the loop, cancelling a Register in flight; resolves once it has ended. */
  async stop(): Promise<void> {
    const loop = this.loop;
    this.loop = undefined;
    if (loop) {
      loop.abort.abort();
      await loop.done;
    }
    this.setRegistered(null);
  }

  private async run(loop: Loop): Promise<void> {
    const { signal } = loop.abort;
    const { backoff } = loop;
    try {
      for (let attempt = 1; !signal.aborted; attempt++) {
        this.kicked = false;
        this.reportedDuringAttempt = undefined;
        const failure = await this.attempt(signal, attempt);
        if (failure === null || signal.aborted) return;
        // Kicked: kubelet changed during the attempt, so try again at once and from the first delay.
        const kicked = this.kicked;
        if (kicked) backoff.reset();
        const delayMs = kicked ? 0 : backoff.next();
        this.reportFailure(failure, attempt, delayMs);
        if (kicked) continue;
        await backoff.pause(delayMs, signal);
        if (this.kicked) backoff.reset();
      }
    } finally {
      // Synchronous with the last attempt's outcome: ensure() never sees a loop that has finished.
      if (this.loop === loop) this.loop = undefined;
    }
  }

  /** One Register; null once registered, else why it failed. */
  private async attempt(signal: AbortSignal, attempt: number): Promise<Error | null> {
    try {
      const kubelet = await this.registerOnce(signal);
      if (signal.aborted) return null;
      this.setRegistered(kubelet);
      this.options.metrics.registrations.inc({ resource: this.options.resourceName, result: 'ok' });
      this.options.logger.info({ endpoint: this.options.endpoint, attempt }, 'registered with kubelet');
      return null;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  /** Registers with the kubelet serving kubelet.sock now; resolves with that socket's identity. */
  private async registerOnce(signal: AbortSignal): Promise<string> {
    const kubelet = await socketId(this.kubeletSocket);
    if (kubelet === null) throw await this.whyNoKubeletSocket();
    await acceptsConnection(this.kubeletSocket, signal);
    await this.sendRegister(signal);
    const reported = this.reportedDuringAttempt;
    if (reported !== undefined && reported !== kubelet) {
      // The watcher saw another kubelet.sock meanwhile: which kubelet answered is unknown, and
      // registering again is harmless where missing the new kubelet is not.
      throw new Error('kubelet.sock was re-created during Register (kubelet restarted)');
    }
    return kubelet;
  }

  private async whyNoKubeletSocket(): Promise<Error> {
    const dir = this.options.pluginDir;
    return new Error(
      (await directoryId(dir)) !== null
        ? `no kubelet.sock in ${dir}: kubelet is not running (or not yet)`
        : `device plugin directory ${dir} does not exist: kubelet is not running (or not yet)`,
    );
  }

  private async sendRegister(signal: AbortSignal): Promise<void> {
    const client = new RegistrationClient(
      unixTarget(this.kubeletSocket),
      grpc.credentials.createInsecure(),
      ONE_SHOT_CHANNEL,
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const call = client.Register(
          {
            version: KUBELET_API_VERSION,
            endpoint: this.options.endpoint,
            resource_name: this.options.resourceName,
            options: PLUGIN_OPTIONS,
          },
          { deadline: Date.now() + (this.options.registerTimeoutMs ?? 5000) },
          (err) => {
            signal.removeEventListener('abort', cancel);
            if (err) reject(err);
            else resolve();
          },
        );
        const cancel = () => call.cancel();
        if (signal.aborted) cancel();
        else signal.addEventListener('abort', cancel, { once: true });
      });
    } finally {
      client.close();
    }
  }

  private reportFailure(err: Error, attempt: number, retryInMs: number): void {
    this.options.metrics.registrations.inc({ resource: this.options.resourceName, result: 'error' });
    const level = attempt === 1 || attempt % 10 === 0 ? 'warn' : 'debug';
    this.options.logger[level](
      { kubeletSocket: this.kubeletSocket, attempt, retryInMs, err },
      'registration with kubelet failed; retrying',
    );
  }

  private setRegistered(kubeletSocketId: string | null): void {
    this.registeredWith = kubeletSocketId;
    this.options.metrics.registered.set(
      { resource: this.options.resourceName },
      kubeletSocketId === null ? 0 : 1,
    );
  }
}

/** Resolves once `socket` accepts a connection (closed at once); rejects with the connect error. */
function acceptsConnection(socket: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const connection = net.connect(socket);
    const finish = (err?: Error) => {
      signal.removeEventListener('abort', onAbort);
      connection.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(new Error('registration stopped'));
    connection.once('connect', () => finish());
    connection.once('error', (err) => finish(err));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
