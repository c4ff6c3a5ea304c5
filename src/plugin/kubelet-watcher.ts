/**
 * Notices kubelet restarts: kubelet deletes every socket in the device plugin directory (ours
 * included) and then re-creates kubelet.sock. inotify (fs.watch) reports it at once; a short poll
 * backs it up, because inotify can miss events on some filesystems and an overflowed queue drops them.
 *
 * A watch dies with its directory. When the directory is deleted the watcher says so once, watches
 * the parent for its return, and re-arms the watch on the new directory as soon as it exists.
 */
import { type FSWatcher, watch } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { KUBELET_SOCKET_NAME } from '../kubelet-api/proto.js';
import { directoryId, socketId } from './socket-id.js';

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
  /** on the parent directory, while the device plugin directory is missing */
  private parentWatcher: FSWatcher | undefined;
  /** identity of the directory the watch is on (a re-created directory needs a new watch) */
  private watchedDirectory: string | null = null;
  private directoryMissing = false;
  private timer: NodeJS.Timeout | undefined;
  private kubeletSocketId: string | null | undefined;
  private checking = false;
  private recheck = false;
  private stopped = false;
  private readonly kubeletSocketPath: string;

  constructor(private readonly options: KubeletWatcherOptions) {
    this.kubeletSocketPath = path.join(options.pluginDir, KUBELET_SOCKET_NAME);
  }

  async start(): Promise<void> {
    await mkdir(this.options.pluginDir, { recursive: true });
    this.kubeletSocketId = await socketId(this.kubeletSocketPath);
    await this.followDirectory();
    this.timer = setInterval(() => void this.check(), this.options.pollIntervalMs ?? 500);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    this.closeWatch();
    this.closeParentWatch();
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
        const directoryPresent = await this.followDirectory();
        if (this.stopped) return;
        // Our sockets first: a restart they need must come before re-registering with a new kubelet.
        for (const socket of this.options.ownSockets()) {
          if ((await socketId(socket)) === null) this.options.onSocketRemoved(socket);
        }
        await this.checkKubeletSocket(directoryPresent);
      } while (this.recheck);
    } finally {
      this.checking = false;
    }
  }

  private async checkKubeletSocket(directoryPresent: boolean): Promise<void> {
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
      // A missing directory was reported already, and implies this.
      if (directoryPresent) {
        this.options.logger.warn(
          { socket: this.kubeletSocketPath },
          'kubelet.sock is gone: waiting for kubelet',
        );
      }
    }
  }

  /**
   * Keeps the watch on the directory that exists now; reports its disappearance once. Returns whether
   * the directory exists.
   */
  private async followDirectory(): Promise<boolean> {
    const dir = this.options.pluginDir;
    const id = await directoryId(dir);
    if (this.stopped) return id !== null;
    if (id === null) {
      if (!this.directoryMissing) {
        this.directoryMissing = true;
        this.watchedDirectory = null;
        this.closeWatch();
        this.options.logger.warn(
          { dir },
          'device plugin directory is missing: waiting for kubelet to re-create it',
        );
        this.watchParent();
      }
      return false;
    }
    if (this.directoryMissing) {
      this.directoryMissing = false;
      this.closeParentWatch();
      this.options.logger.info({ dir }, 'device plugin directory is back');
    }
    if (id !== this.watchedDirectory) this.watchDirectory(id);
    return true;
  }

  private watchDirectory(id: string): void {
    this.closeWatch();
    this.watchedDirectory = id;
    const dir = this.options.pluginDir;
    try {
      this.watcher = watch(dir, () => void this.check());
      this.watcher.on('error', (err) => {
        this.options.logger.warn({ err, dir }, 'directory watch failed; polling only');
        this.closeWatch();
      });
    } catch (err) {
      this.options.logger.warn({ err, dir }, 'cannot watch the device plugin directory; polling only');
    }
  }

  /** Best effort: without it (parent missing, or not watchable) the poll sees the directory return. */
  private watchParent(): void {
    const name = path.basename(this.options.pluginDir);
    try {
      this.parentWatcher = watch(path.dirname(this.options.pluginDir), (_event, file) => {
        if (file === name) void this.check();
      });
      this.parentWatcher.on('error', () => this.closeParentWatch());
    } catch {
      this.parentWatcher = undefined;
    }
  }

  private closeWatch(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private closeParentWatch(): void {
    this.parentWatcher?.close();
    this.parentWatcher = undefined;
  }
}
