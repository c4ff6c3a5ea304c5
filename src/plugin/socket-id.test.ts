import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { directoryId } from './socket-id.js';

let root: string | undefined;
afterEach(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('directoryId', () => {
  it('changes when the directory is deleted and made again, even on the same inode number', async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'vgpu-dir-id-'));
    const dir = path.join(root, 'device-plugins');
    await mkdir(dir);
    const before = await directoryId(dir);
    await rm(dir, { recursive: true });
    await mkdir(dir);
    // ext4 and tmpfs hand the freed inode number straight back (seen here), the case a (dev, inode)
    // pair missed: the watch stayed on the deleted directory, and kubelet restarts went unnoticed.
    expect(await directoryId(dir)).not.toBe(before);
  });

  it('stays the same while entries come and go (a socket created or removed)', async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'vgpu-dir-id-'));
    const before = await directoryId(root);
    await writeFile(path.join(root, 'kubelet.sock'), '');
    await rm(path.join(root, 'kubelet.sock'));
    expect(await directoryId(root)).toBe(before);
    expect(await directoryId(path.join(root, 'missing'))).toBeNull();
  });
});
