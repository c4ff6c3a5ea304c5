/**
 * Which pod and container a host process belongs to, read from the host's /proc (mounted at
 * `--host-proc` when the monitor runs in a container; it needs `hostPID: true` for NVML's PIDs to be
 * host PIDs).
 *
 * A process's cgroup does not change once its container runs, so the answer is cached; the cache key
 * is (pid, start time from /proc/<pid>/stat field 22), so a PID the kernel hands to a new process is
 * read again instead of being charged to the old owner. Every read goes through fs/promises (the libuv
 * pool), never blocking the event loop.
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import { type PodContainerRef, parseProcCgroup } from './cgroup.js';

/** What /proc says about a live process. */
export interface HostProcess {
  pid: number;
  /** /proc/<pid>/stat field 22: clock ticks after boot; with the pid, it names one process */
  startTime: string;
  /** undefined: the process is in no Kubernetes pod (a host service, a login session, ...) */
  owner: PodContainerRef | undefined;
}

interface CachedOwner {
  startTime: string;
  owner: PodContainerRef | undefined;
}

/** Both mean "there is no such process (any more)". */
const GONE_CODES = new Set(['ENOENT', 'ESRCH']);
/** /proc/<pid>/stat and /proc/<pid>/cgroup fit in this on every host seen; longer ones are read on. */
const FIRST_READ_BYTES = 4096;

export class HostProcesses {
  private readonly cache = new Map<number, CachedOwner>();

  constructor(private readonly procRoot: string) {}

  /** Processes in the cache (it must stay bounded by the processes NVML lists). */
  get cachedCount(): number {
    return this.cache.size;
  }

  /**
   * The process with this PID, or undefined when it has exited. Throws an Error naming the file for
   * anything else (a /proc that cannot be read).
   */
  async lookup(pid: number): Promise<HostProcess | undefined> {
    const startTime = await this.readStartTime(pid);
    if (startTime === undefined) {
      this.cache.delete(pid);
      return undefined;
    }
    const cached = this.cache.get(pid);
    if (cached?.startTime === startTime) return { pid, startTime, owner: cached.owner };
    const cgroup = await this.readProcFile(pid, 'cgroup');
    // The PID may have been reused between the two reads: only keep a cgroup read while it was the same.
    if (cgroup === undefined || (await this.readStartTime(pid)) !== startTime) {
      this.cache.delete(pid);
      return undefined;
    }
    const owner = parseProcCgroup(cgroup);
    this.cache.set(pid, { startTime, owner });
    return { pid, startTime, owner };
  }

  /** Drops cached processes not in `live` (call after each collection: the cache stays bounded). */
  retainOnly(live: ReadonlySet<number>): void {
    for (const pid of this.cache.keys()) if (!live.has(pid)) this.cache.delete(pid);
  }

  private async readStartTime(pid: number): Promise<string | undefined> {
    const stat = await this.readProcFile(pid, 'stat');
    return stat === undefined ? undefined : startTimeOf(stat, this.fileOf(pid, 'stat'));
  }

  private async readProcFile(pid: number, name: string): Promise<string | undefined> {
    const file = this.fileOf(pid, name);
    try {
      return await readSmallFile(file);
    } catch (err) {
      if (GONE_CODES.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  private fileOf(pid: number, name: string): string {
    return path.join(this.procRoot, String(pid), name);
  }
}

/**
 * Reads a small file with open, read, close: less CPU than readFile, which also fstats and reads again
 * to find the end (measured: 512 cached lookups per collection went from ~79 to ~60 ms of CPU). A read
 * that returns less than asked is the end, as with /proc's files.
 */
async function readSmallFile(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const chunks: Buffer[] = [];
    for (;;) {
      const { buffer, bytesRead } = await handle.read(
        Buffer.allocUnsafe(FIRST_READ_BYTES),
        0,
        FIRST_READ_BYTES,
      );
      chunks.push(buffer.subarray(0, bytesRead));
      if (bytesRead < FIRST_READ_BYTES) return Buffer.concat(chunks).toString('utf8');
    }
  } finally {
    await handle.close();
  }
}

/**
 * Field 22 (starttime) of /proc/<pid>/stat. Field 2 is the command in parentheses and may itself
 * contain spaces and parentheses, so fields are counted after its last `)`.
 */
export function startTimeOf(stat: string, file = '/proc/<pid>/stat'): string {
  const end = stat.lastIndexOf(')');
  const fields =
    end < 0
      ? []
      : stat
          .slice(end + 1)
          .trim()
          .split(/\s+/);
  const startTime = fields[22 - 3]; // fields[0] is field 3 (state)
  if (startTime === undefined || !/^\d+$/.test(startTime)) {
    throw new Error(`${file} has no start time (field 22): ${JSON.stringify(stat.slice(0, 120))}`);
  }
  return startTime;
}
