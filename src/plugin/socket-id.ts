import { stat } from 'node:fs/promises';

/**
 * Identity of a socket file (device, inode, change time), or null when absent. A kubelet restart
 * re-creates kubelet.sock, so a new identity means a new kubelet that does not know us yet.
 */
export async function socketId(file: string): Promise<string | null> {
  try {
    const s = await stat(file);
    return s.isSocket() ? `${s.dev}:${s.ino}:${s.ctimeMs}` : null;
  } catch {
    return null;
  }
}

/**
 * Identity of a directory (device, inode, birth time), or null when absent: a re-created one has a new
 * identity. The birth time matters: a directory deleted and made again at once often gets the same
 * inode number back (ext4, tmpfs), and a watch on the old one sees nothing of the new one. Not the
 * change time: it moves whenever an entry is added or removed.
 */
export async function directoryId(dir: string): Promise<string | null> {
  try {
    const s = await stat(dir);
    return s.isDirectory() ? `${s.dev}:${s.ino}:${s.birthtimeMs}` : null;
  } catch {
    return null;
  }
}
