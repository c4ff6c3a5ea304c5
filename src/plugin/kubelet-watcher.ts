/**
 * Notices kubelet restarts: kubelet deletes every socket in the device plugin directory (ours
 * included) and then re-creates kubelet.sock. inotify (fs.watch) reports it at once; a short poll
 * backs it up, because inotify can miss events on some filesystems and an overflowed queue drops them.
 */
import { type FSWatcher, watch } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { KUBELET_SOCKET_NAME } from './proto.js';
import { socketId } from './socket-id.js';

export interface KubeletWatcherOptions {
  pluginDir: string;
  logger: Logger;
  /** sockets we serve and expect to exist */
  ownSockets: () => readonly string[];
  /** kubelet.sock was created or replaced; `kubeletSocketId` identifies the new one */
  onKubeletRestart: (kubeletSocketId: string) => void;
  /** one of our sockets is gone */
  onSocketRemoved: (socketPath: string) => void;
  pollIntervalMs?: number;
}

export class KubeletWatcher {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private kubeletSocketId: string | null | undefined;
  private checking = false;
  private recheck = false;
  private readonly kubeletSocketPath: string;

  constructor(private readonly options: KubeletWatcherOptions) {
    this.kubeletSocketPath = path.join(options.pluginDir, KUBELET_SOCKET_NAME);
  }

  async start(): Promise<void> {
    await mkdir(this.options.pluginDir, { recursive: true });
    this.kubeletSocketId = await socketId(this.kubeletSocketPath);
    try {
      this.watcher = watch(this.options.pluginDir, () => void this.check());
      this.watcher.on('error', (err) => {
        this.options.logger.warn(
          { err: err.message, dir: this.options.pluginDir },
          'directory watch failed; polling only',
        );
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.options.logger.warn(
        { err: (err as Error).message },
        'cannot watch the device plugin directory; polling only',
      );
    }
    this.timer = setInterval(() => void this.check(), this.options.pollIntervalMs ?? 500);
    this.timer.unref();
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    if (this.checking) {
      this.recheck = true;
      return;
    }
    this.checking = true;
    try {
      do {
        this.recheck = false;
        // Our sockets first: a restart they need must come before re-registering with a new kubelet.
        for (const socket of this.options.ownSockets()) {
          if ((await socketId(socket)) === null) this.options.onSocketRemoved(socket);
        }
        const id = await socketId(this.kubeletSocketPath);
        if (id !== null && id !== this.kubeletSocketId) {
          this.kubeletSocketId = id;
          this.options.logger.info(
            { socket: this.kubeletSocketPath },
            'kubelet.sock (re)created: kubelet restarted',
          );
          this.options.onKubeletRestart(id);
        } else if (id === null && this.kubeletSocketId !== null) {
          this.kubeletSocketId = null;
          this.options.logger.warn(
            { socket: this.kubeletSocketPath },
            'kubelet.sock is gone: waiting for kubelet',
          );
        }
      } while (this.recheck);
    } finally {
      this.checking = false;
    }
  }
}
