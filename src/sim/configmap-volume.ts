/**
 * A ConfigMap volume on local disk, updated exactly the way kubelet's AtomicWriter does it
 * (kubernetes/kubernetes pkg/volume/util/atomic_writer.go): the payload goes to a new timestamped
 * directory, `..data_tmp` is linked to it and renamed over `..data`, key links that did not exist yet
 * are created (`key -> ..data/key`; existing ones never change), then the old directory and the links
 * of removed keys are deleted.
 */
import { mkdir, mkdtemp, readlink, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export class ConfigMapVolume {
  private updates = 0;
  private keys = new Set<string>();

  private constructor(readonly dir: string) {}

  /** In `dir` (created) or a new temp directory. */
  static async create(payload: Record<string, string>, dir?: string): Promise<ConfigMapVolume> {
    if (dir) await mkdir(dir, { recursive: true });
    const volume = new ConfigMapVolume(dir ?? (await mkdtemp(path.join(os.tmpdir(), 'vgpu-configmap-'))));
    await volume.write(payload);
    return volume;
  }

  /** Replaces the whole payload, as an edit of the ConfigMap does. */
  async write(payload: Record<string, string>): Promise<void> {
    const n = this.updates++;
    const stamp = `..2026_11_21_10_${String(Math.floor(n / 60)).padStart(2, '0')}_${String(n % 60).padStart(2, '0')}.${100 + n}`;
    const tsDir = path.join(this.dir, stamp);
    await mkdir(tsDir);
    for (const [key, text] of Object.entries(payload)) await writeFile(path.join(tsDir, key), text);
    const dataLink = path.join(this.dir, '..data');
    const old = await readlink(dataLink).catch(() => undefined);
    const tmpLink = path.join(this.dir, '..data_tmp');
    await symlink(stamp, tmpLink);
    await rename(tmpLink, dataLink);
    for (const key of Object.keys(payload)) {
      if (!this.keys.has(key)) await symlink(path.join('..data', key), path.join(this.dir, key));
    }
    if (old) await rm(path.join(this.dir, old), { recursive: true, force: true });
    for (const key of this.keys) if (!(key in payload)) await unlink(path.join(this.dir, key));
    this.keys = new Set(Object.keys(payload));
  }

  /** The directory `..data` points to now: editing a file in it bypasses every watched path. */
  async currentDataDir(): Promise<string> {
    return path.join(this.dir, await readlink(path.join(this.dir, '..data')));
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
