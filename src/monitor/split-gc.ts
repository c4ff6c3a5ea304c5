/**
 * Removes split containers' host directories that no container holds any more, so that
 * `<hookPath>/containers/` does not grow with every pod that ever ran on the node.
 *
 * Offered only directories no container holds, from a scan in which kubelet answered (with the
 * PodResources socket down nothing is offered, so nothing is deleted). A directory goes once it has
 * been unheld for the whole grace period in a row (and was not modified during it), and never while
 * in use:
 * - its shared region is locked (`<host /proc>/locks`: libvgpu locks the file while it sets it up), or
 * - the region was written during the grace period and lists a process, or cannot be read.
 * A region that lists processes but nobody wrote for the grace period is a leftover: libvgpu only clears
 * the slots of killed processes (OOM kills) when another process of the same container starts, while
 * in a live process its watcher thread writes the region every 120 ms (the file's mtime follows within
 * the kernel's writeback delay, seconds, well inside the grace period).
 */
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { readSharedRegion, SharedRegionError } from './hami-region.js';
import type { AllocationDirectory } from './split-directories.js';

export interface SplitGarbageCollectorOptions {
  gracePeriodMs: number;
  hostProc: string;
  logger: Logger;
  now: () => number;
}

export class SplitGarbageCollector {
  /** directory → when it was first seen unheld (ms) */
  private readonly unheldSince = new Map<string, number>();
  /** directories already logged as kept because in use */
  private readonly keptInUse = new Set<string>();

  constructor(private readonly options: SplitGarbageCollectorOptions) {}

  /** Removes the directories among `unheld` that are due; returns the removed paths. */
  async collect(unheld: readonly AllocationDirectory[]): Promise<string[]> {
    const due = this.due(unheld);
    if (due.length === 0) return [];
    const locks = await lockedFiles(path.join(this.options.hostProc, 'locks'));
    const removed: string[] = [];
    for (const directory of due) {
      const busy = await this.inUse(directory, locks);
      if (busy) {
        this.noteKept(directory, busy);
        continue;
      }
      if (await this.remove(directory)) removed.push(directory.dir);
    }
    return removed;
  }

  /** Starts the clock for newly unheld directories, stops it for held ones, and returns those due. */
  private due(unheld: readonly AllocationDirectory[]): AllocationDirectory[] {
    const now = this.options.now();
    const grace = this.options.gracePeriodMs;
    const current = new Set(unheld.map((d) => d.dir));
    for (const dir of this.unheldSince.keys()) {
      if (!current.has(dir)) {
        this.unheldSince.delete(dir);
        this.keptInUse.delete(dir);
      }
    }
    return unheld.filter((d) => {
      const since = this.unheldSince.get(d.dir) ?? now;
      this.unheldSince.set(d.dir, since);
      return now - since >= grace && now - d.modifiedMs >= grace;
    });
  }

  /** Why the directory must stay, or undefined when nothing uses it. */
  private async inUse(
    directory: AllocationDirectory,
    locks: ReadonlySet<string>,
  ): Promise<string | undefined> {
    const file = regionFile(directory);
    let info: Awaited<ReturnType<typeof statBig>>;
    try {
      info = await statBig(file);
    } catch {
      return undefined; // no region: no process ever used the GPU through HAMi-core
    }
    if (locks.has(lockKey(info.dev, info.ino))) return `${file} is locked`;
    if (this.options.now() - Number(info.mtimeMs) >= this.options.gracePeriodMs) return undefined;
    try {
      const { processes } = await readSharedRegion(file);
      return processes.length > 0 ? `${file} lists ${processes.length} process(es)` : undefined;
    } catch (err) {
      if (err instanceof SharedRegionError && err.problem === 'missing') return undefined;
      return `${file} was written recently and cannot be read (${String(err)})`;
    }
  }

  private async remove(directory: AllocationDirectory): Promise<boolean> {
    const since = this.unheldSince.get(directory.dir)!;
    const { resource, deviceIds } = directory.allocation ?? {};
    try {
      await rm(directory.dir, { recursive: true, force: true });
    } catch (err) {
      this.options.logger.warn({ err, dir: directory.dir }, 'cannot remove split directory');
      return false;
    }
    this.unheldSince.delete(directory.dir);
    this.keptInUse.delete(directory.dir);
    this.options.logger.info(
      {
        dir: directory.dir,
        resource,
        deviceIds,
        unheldSeconds: Math.round((this.options.now() - since) / 1000),
      },
      'removed split directory: no container holds its devices',
    );
    return true;
  }

  private noteKept(directory: AllocationDirectory, reason: string): void {
    if (this.keptInUse.has(directory.dir)) return;
    this.keptInUse.add(directory.dir);
    this.options.logger.info(
      { dir: directory.dir, reason },
      'split directory kept: no container holds its devices, but it is in use',
    );
  }
}

/** The region file: the plugin names it after the directory (CUDA_DEVICE_MEMORY_SHARED_CACHE). */
export function regionFile(directory: Pick<AllocationDirectory, 'dir' | 'name'>): string {
  return path.join(directory.dir, `${directory.name}.cache`);
}

function statBig(file: string) {
  return stat(file, { bigint: true });
}

/** `major:minor:inode` as /proc/locks writes it (major and minor in hex there, decimal here). */
export function lockKey(dev: bigint, ino: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}:${ino}`;
}

/** Files with a POSIX or flock lock now, from `/proc/locks`; none when it cannot be read. */
export async function lockedFiles(locksFile: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(locksFile, 'utf8');
  } catch {
    return new Set();
  }
  const keys = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /\s([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (m) keys.add(`${BigInt(`0x${m[1]}`)}:${BigInt(`0x${m[2]}`)}:${m[3]}`);
  }
  return keys;
}
