/** Host facts read from files: a PCI device's NUMA node (sysfs) and the MIG capability minors (procfs). */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readMigMinors, readNumaNode } from '../../src/runtime/host.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function root(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-host-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

describe('readNumaNode', () => {
  it('reads the node, and null for -1 (unknown), garbage or a missing file', async () => {
    const sys = await root({
      'bus/pci/devices/0000:07:00.0/numa_node': '1\n',
      'bus/pci/devices/0000:0f:00.0/numa_node': '-1\n',
      'bus/pci/devices/0000:47:00.0/numa_node': 'n/a\n',
    });
    expect(await readNumaNode(sys, '0000:07:00.0')).toBe(1);
    expect(await readNumaNode(sys, '0000:0f:00.0')).toBeNull();
    expect(await readNumaNode(sys, '0000:47:00.0')).toBeNull();
    expect(await readNumaNode(sys, '0000:99:00.0')).toBeNull();
  });
});

describe('readMigMinors', () => {
  it('maps each capability path to its minor, skipping lines that are not "<path> <number>"', async () => {
    const proc = await root({
      'driver/nvidia-caps/mig-minors': [
        'config 1',
        '  gpu0/gi1/access   2  ',
        'gpu0/gi1/ci0/access\t3',
        'gpu0/gi2/access',
        'gpu0/gi2/ci0/access x4',
        'gpu0/gi3/access 5x',
        '6',
        '',
      ].join('\n'),
    });
    expect([...(await readMigMinors(proc))]).toEqual([
      ['config', 1],
      ['gpu0/gi1/access', 2],
      ['gpu0/gi1/ci0/access', 3],
    ]);
  });

  it('is empty when the file is absent', async () => {
    expect((await readMigMinors(await root({}))).size).toBe(0);
  });
});
