/**
 * Reads a config file without ever blocking: only regular files (or links that resolve to one, as
 * kubelet's ConfigMap keys do) are read, and the whole read has a deadline. Opening a FIFO for reading
 * blocks until a writer appears, on a libuv pool thread that Node then waits for at exit, so a FIFO at
 * the config path would stall every later reload and the shutdown; the file is therefore opened with
 * O_NONBLOCK and checked with fstat on the open descriptor (no window between check and read).
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { errorMessage } from '../errors.js';
import type { Result } from '../result.js';

/** The file's text, or why it was not read. */
type ReadResult = Result<string, string>;

export interface ReadOptions {
  /** larger files are refused unread */
  maxBytes: number;
  /** the open, the checks and the read together; a stalled filesystem fails the read after this */
  timeoutMs: number;
}

export const DEFAULT_READ_TIMEOUT_MS = 5000;

class ReadTimeout extends Error {}

/** Reads `file` as UTF-8 text, or says why it cannot be read: missing, not a regular file, too large, slow. */
export async function readRegularFile(file: string, options: ReadOptions): Promise<ReadResult> {
  const deadline = deadlineAfter(options.timeoutMs);
  let opening: Promise<FileHandle> | undefined;
  let handle: FileHandle | undefined;
  try {
    // stat first names what a socket is (opening one fails with ENXIO); fstat below settles the race.
    const refusal = refusalFor(await deadline.race(stat(file)), options.maxBytes);
    if (refusal) return { ok: false, error: refusal };
    opening = open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    handle = await deadline.race(opening);
    const info = await deadline.race(handle.stat());
    const replaced = refusalFor(info, options.maxBytes);
    if (replaced) return { ok: false, error: replaced };
    const text = await deadline.race(readAtMost(handle, options.maxBytes + 1));
    if (Buffer.byteLength(text) > options.maxBytes) return { ok: false, error: tooLarge(info.size, options) };
    return { ok: true, value: text };
  } catch (error) {
    if (!(error instanceof ReadTimeout)) return { ok: false, error: readErrorMessage(error) };
    // An open that completes after the deadline still holds a descriptor: close it then.
    if (!handle) opening?.then((late) => late.close()).catch(() => {});
    return { ok: false, error: `reading the file took longer than ${options.timeoutMs} ms; gave up` };
  } finally {
    deadline.clear();
    // A read stuck past the deadline keeps the handle busy and its close waits for it: never awaited.
    handle?.close().catch(() => {});
  }
}

function refusalFor(info: Stats, maxBytes: number): string | undefined {
  if (info.isDirectory()) return 'is a directory (expected a configuration file)';
  if (!info.isFile()) {
    return `is ${fileKind(info)}, not a regular file (a config must be a regular file or a link to one)`;
  }
  if (info.size > maxBytes) return tooLarge(info.size, { maxBytes });
  return undefined;
}

function tooLarge(size: number, { maxBytes }: Pick<ReadOptions, 'maxBytes'>): string {
  return `file is too large (${size} bytes; at most ${maxBytes})`;
}

/** What a non-regular file is, for messages. */
function fileKind(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/** Up to `limit` bytes from the start, so a file that grows while it is read cannot exhaust memory. */
async function readAtMost(handle: FileHandle, limit: number): Promise<string> {
  const buffer = Buffer.allocUnsafe(limit);
  let filled = 0;
  while (filled < limit) {
    const { bytesRead } = await handle.read(buffer, filled, limit - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.toString('utf8', 0, filled);
}

function readErrorMessage(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory (expected a configuration file)';
  return `cannot read the file: ${errorMessage(error)}`;
}

interface Deadline {
  race<T>(promise: Promise<T>): Promise<T>;
  clear(): void;
}

function deadlineAfter(ms: number): Deadline {
  let expire: (error: Error) => void = () => {};
  const expiry = new Promise<never>((_, reject) => {
    expire = reject;
  });
  expiry.catch(() => {});
  const timer = setTimeout(() => expire(new ReadTimeout()), ms);
  return {
    race: (promise) => Promise.race([promise, expiry]),
    clear: () => clearTimeout(timer),
  };
}
