/**
 * Reconciles the wanted resources with running device plugin servers: starts new ones, updates the
 * device lists of changed ones (only those see a ListAndWatch message), stops the ones that went
 * away, and re-serves and re-registers when kubelet restarts.
 */
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from '../backoff.js';
import type { ResourceSpec } from '../devices/resource-types.js';
import {
  DevicePluginServer,
  PluginDirectoryMissingError,
  type ServerTuning,
} from './device-plugin-server.js';
import { KubeletWatcher } from './kubelet-watcher.js';
import type { PluginMetrics } from './metrics.js';
import { Resource, type ResourceContext } from './resource.js';
import { socketId } from './socket-id.js';

export interface PluginManagerOptions extends ServerTuning {
  pluginDir: string;
  logger: Logger;
  metrics: PluginMetrics;
  /** the kubelet watch's poll, backing up inotify */
  watchPollIntervalMs?: number;
}

/** Between attempts to serve a resource again; unref'd: a pending retry never holds the process. */
const RESTART_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, unref: true };

interface Entry {
  resource: Resource;
  server: DevicePluginServer;
}

export class PluginManager {
  private readonly entries = new Map<string, Entry>();
  private stopped = false;
  /** ends the pauses of restart retries */
  private readonly stopping = new AbortController();
  /** servers with a restart (or its retries) under way */
  private readonly restarting = new Set<DevicePluginServer>();
  /** the first reconcile is done: failures to serve are then retried instead of thrown */
  private initialised = false;
  /** what the resources' answers depend on; set by start(), replaced by apply() */
  private context: ResourceContext | undefined;
  private readonly watcher: KubeletWatcher;
  private reconciling: Promise<void> = Promise.resolve();

  constructor(private readonly options: PluginManagerOptions) {
    this.watcher = new KubeletWatcher({
      pluginDir: options.pluginDir,
      logger: options.logger,
      pollIntervalMs: options.watchPollIntervalMs,
      ownSockets: () =>
        [...this.entries.values()].filter((e) => e.server.serving).map((e) => e.server.socketPath),
      onKubeletRestart: (kubeletSocketId) => {
        options.metrics.kubeletRestarts.inc();
        for (const { server } of this.entries.values()) {
          server.kubeletRestarted(kubeletSocketId).catch((err: unknown) => {
            // A missing directory was reported by the watcher; its re-creation brings kubelet.sock back.
            if (err instanceof PluginDirectoryMissingError) return;
            server.logger.error({ err }, 'serving again failed');
            return this.restartServer(server, 'kubelet restarted');
          });
        }
      },
      onSocketRemoved: (socket) => {
        const entry = [...this.entries.values()].find((e) => e.server.socketPath === socket);
        if (entry) void this.restartServer(entry.server, 'socket removed (kubelet restarting?)');
      },
    });
  }

  async start(specs: readonly ResourceSpec[], context: ResourceContext): Promise<void> {
    await this.watcher.start();
    await this.apply(specs, context);
  }

  /** Every resource is registered with kubelet and kubelet has its devices (true when there is none). */
  get ready(): boolean {
    return this.notReadyReasons().length === 0;
  }

  /** Per resource not ready, why (not registered, or its device list did not reach kubelet). */
  notReadyReasons(): string[] {
    return [...this.entries.values()].flatMap((e) => e.server.notReadyReason() ?? []);
  }

  resourceNames(): string[] {
    return [...this.entries.keys()];
  }

  resource(name: string): Resource | undefined {
    return this.entries.get(name)?.resource;
  }

  /** Brings servers in line with `specs`; with a new context when settings changed. */
  apply(specs: readonly ResourceSpec[], context?: ResourceContext): Promise<void> {
    const run = this.reconciling.then(() => this.reconcile(specs, context));
    this.reconciling = run.catch(() => {});
    return run;
  }

  /** Device health changed: every server re-sends its list if it differs. */
  healthChanged(): void {
    for (const { server } of this.entries.values()) server.devicesChanged();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    this.watcher.stop();
    await this.reconciling;
    await Promise.all([...this.entries.values()].map((e) => e.server.stop()));
    this.entries.clear();
  }

  private async reconcile(specs: readonly ResourceSpec[], context?: ResourceContext): Promise<void> {
    if (context) this.context = context;
    const wanted = new Map(specs.filter((s) => s.devices.length > 0).map((s) => [s.name, s]));
    for (const [name, entry] of this.entries) {
      if (wanted.has(name)) continue;
      this.entries.delete(name);
      entry.server.logger.info('resource no longer advertised: stopping its server');
      await entry.server.stop();
    }
    for (const [name, spec] of wanted) {
      const existing = this.entries.get(name);
      if (existing) {
        existing.resource.update(spec);
        existing.server.devicesChanged();
        continue;
      }
      const resource = new Resource(spec, () => this.context!);
      const server = new DevicePluginServer({ ...this.options, handler: resource });
      this.entries.set(name, { resource, server });
      server.logger.info({ devices: spec.devices.length, sharing: spec.sharing }, 'advertising resource');
      if (this.initialised) {
        // Added by a reload: a failure to serve must not stop the others; keep trying.
        await server.start().catch(() => this.restartServer(server, 'first start failed'));
      } else {
        await server.start();
      }
    }
    this.initialised = true;
  }

  /**
   * Restarts a server; when serving fails (a transient bind error), tries again with backoff for as
   * long as the resource is wanted and nothing else brought it back. One chain per server: a socket
   * event seen while a retry is pending joins it instead of starting another. A missing directory
   * ends the chain: the watcher has said so, and kubelet re-creating it (kubelet.sock included)
   * serves again through kubeletRestarted.
   */
  private restartServer(server: DevicePluginServer, reason: string): Promise<void> {
    if (this.restarting.has(server)) return Promise.resolve();
    this.restarting.add(server);
    return this.restartWithRetry(server, reason, undefined);
  }

  /** One attempt; a failure schedules the next one (`retries` paces them) without waiting for it. */
  private async restartWithRetry(
    server: DevicePluginServer,
    reason: string,
    retries: Backoff | undefined,
  ): Promise<void> {
    try {
      // A kubelet restart may have brought the server back while this retry waited.
      if (retries === undefined || !(await this.servesOnLiveSocket(server))) await server.restart(reason);
      this.restarting.delete(server);
    } catch (err) {
      if (this.stopped || !this.isRunning(server) || err instanceof PluginDirectoryMissingError) {
        this.restarting.delete(server);
        server.logger.debug({ err }, 'serving again stopped');
        return;
      }
      const backoff = retries ?? new Backoff(RESTART_BACKOFF);
      const retryInMs = backoff.next();
      server.logger.error({ err, attempt: backoff.failures, retryInMs }, 'serving again failed; retrying');
      void backoff.pause(retryInMs, this.stopping.signal).then(() => {
        if (this.stopped) this.restarting.delete(server);
        else return this.restartWithRetry(server, reason, backoff);
      });
    }
  }

  private async servesOnLiveSocket(server: DevicePluginServer): Promise<boolean> {
    return server.serving && (await socketId(server.socketPath)) !== null;
  }

  private isRunning(server: DevicePluginServer): boolean {
    return [...this.entries.values()].some((e) => e.server === server);
  }
}
