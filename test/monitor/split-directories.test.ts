/**
 * Split slices' host directories on a temp hook path, laid out as the plugin leaves them
 * (allocation.json) with HAMi-core shared regions written in libvgpu's layout: the join to containers
 * through kubelet's device IDs, the limits and HAMi-core usage reported, and the garbage collection
 * (grace period, never in use, never without an answer from kubelet), each removal logged.
 */
import { mkdir, mkdtemp, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import {
  type DeviceAssignment,
  type DeviceAssignmentSource,
  SplitDirectories,
} from '../../src/monitor/split-directories.js';
import { lockKey } from '../../src/monitor/split-gc.js';
import { encodeRegion, type RegionSpec } from '../helpers/hami-region-file.js';

const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const GONE = 'GPU-99999999-9999-9999-9999-999999999999';
const MiB = 1024 * 1024;
const GRACE = 5 * 60_000;
const TRAIN = { namespace: 'ml', pod: 'trainer-0', container: 'train' };
const SERVE = { namespace: 'web', pod: 'serve-1', container: 'api' };
const RESOURCE = 'nvidia.com/gpu';

let root: string;
let hookPath: string;
let hostProc: string;
let clock: number;
let logs: Record<string, unknown>[];

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'split-dirs-'));
  hookPath = path.join(root, 'vgpu');
  hostProc = path.join(root, 'proc');
  await mkdir(path.join(hookPath, 'containers'), { recursive: true });
  await mkdir(hostProc);
  clock = Date.now();
  logs = [];
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A source that answers what the test set, or fails. */
class Assignments implements DeviceAssignmentSource {
  current: DeviceAssignment[] | undefined | Error = [];
  async assignments(): Promise<readonly DeviceAssignment[] | undefined> {
    if (this.current instanceof Error) throw this.current;
    return this.current;
  }
}

function scanner(source: DeviceAssignmentSource): SplitDirectories {
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return new SplitDirectories({
    hookPath,
    assignments: source,
    gpus: [
      { uuid: GPU0, index: 0 },
      { uuid: GPU1, index: 1 },
    ],
    hostProc,
    gracePeriodMs: GRACE,
    logger: createLogger({ level: 'info', destination }),
    now: () => clock,
  });
}

interface DirectorySpec {
  deviceIds: string[];
  limits?: { uuid: string; memoryMiB: number; corePercent: number }[];
  allocatedAt?: string;
  region?: RegionSpec;
  /** ms before the clock: directory and region mtime */
  ageMs?: number;
}

async function allocationDir(name: string, spec: DirectorySpec): Promise<string> {
  const dir = path.join(hookPath, 'containers', name);
  await mkdir(dir);
  const { deviceIds, limits, allocatedAt = new Date(clock).toISOString() } = spec;
  await writeFile(
    path.join(dir, 'allocation.json'),
    `${JSON.stringify({ resource: RESOURCE, deviceIds, allocatedAt, ...(limits && { limits }) })}\n`,
  );
  if (spec.region) await writeFile(path.join(dir, `${name}.cache`), encodeRegion(spec.region));
  await age(dir, name, spec.ageMs ?? 0);
  return dir;
}

async function age(dir: string, name: string, ageMs: number): Promise<void> {
  const when = new Date(clock - ageMs);
  const cache = path.join(dir, `${name}.cache`);
  await utimes(cache, when, when).catch(() => undefined);
  await utimes(dir, when, when);
}

async function remaining(): Promise<string[]> {
  return (await readdir(path.join(hookPath, 'containers'))).sort();
}

const removals = () => logs.filter((l) => String(l.msg).startsWith('removed split directory'));

describe('split directories: join and usage', () => {
  it('joins each directory to its container by device IDs and reports limits and HAMi-core usage', async () => {
    await allocationDir('a1', {
      deviceIds: [`${GPU0}::0`, `${GPU0}::1`, `${GPU1}::0`],
      limits: [
        { uuid: GPU0, memoryMiB: 20480, corePercent: 50 },
        { uuid: GPU1, memoryMiB: 10240, corePercent: 25 },
      ],
      region: {
        uuids: [GPU0, GPU1],
        memoryLimits: [20480 * MiB, 10240 * MiB],
        lastKernelTime: 1_790_000_000,
        processes: [
          { pid: 7, devices: [{ total: 300 * MiB, context: 100 * MiB, smUtil: 20 }, { total: 5 * MiB }] },
          { pid: 8, devices: [{ total: 700 * MiB, smUtil: 15 }, { total: 0 }] },
        ],
      },
    });
    await allocationDir('b2', {
      deviceIds: [`${GPU1}::1`],
      limits: [{ uuid: GPU1, memoryMiB: 10240, corePercent: 25 }],
    }); // no process used the GPU yet: no region
    const source = new Assignments();
    source.current = [
      { names: TRAIN, resource: RESOURCE, deviceIds: [`${GPU1}::0`, `${GPU0}::1`, `${GPU0}::0`] },
      { names: SERVE, resource: RESOURCE, deviceIds: [`${GPU1}::1`] },
    ];
    const usage = await scanner(source).scan();
    expect(usage).toEqual([
      {
        device: { uuid: GPU0, gpuUuid: GPU0, gpuIndex: 0 },
        names: TRAIN,
        allocation: 'a1',
        deviceIds: [`${GPU0}::0`, `${GPU0}::1`],
        deviceIndex: 0,
        memoryLimitBytes: 20480 * MiB,
        smLimitRatio: 0.5,
        hami: {
          deviceIndex: 0,
          memoryUsedBytes: 1000 * MiB,
          contextBytes: 100 * MiB,
          moduleBytes: 0,
          dataBytes: 1000 * MiB,
          smUtilPercent: 35,
          processCount: 2,
          lastKernelTimeSeconds: 1_790_000_000,
        },
      },
      expect.objectContaining({
        device: { uuid: GPU1, gpuUuid: GPU1, gpuIndex: 1 },
        names: TRAIN,
        deviceIds: [`${GPU1}::0`],
        deviceIndex: 1,
        memoryLimitBytes: 10240 * MiB,
        smLimitRatio: 0.25,
        hami: expect.objectContaining({ deviceIndex: 1, memoryUsedBytes: 5 * MiB }),
      }),
      {
        device: { uuid: GPU1, gpuUuid: GPU1, gpuIndex: 1 },
        names: SERVE,
        allocation: 'b2',
        deviceIds: [`${GPU1}::1`],
        deviceIndex: 0,
        memoryLimitBytes: 10240 * MiB,
        smLimitRatio: 0.25,
      },
    ]);
  });

  it("HAMi mode: kubelet's replica IDs only count, each stands for the scheduler's GPU at its position", async () => {
    // kubelet counted two replicas of GPU 0; HAMi's scheduler chose GPU 1, then GPU 0
    const ids = [`${GPU0}-2`, `${GPU0}-3`];
    await allocationDir('uid-p1_main', {
      deviceIds: ids,
      limits: [
        { uuid: GPU1, memoryMiB: 3000, corePercent: 30 },
        { uuid: GPU0, memoryMiB: 1000, corePercent: 30 },
      ],
    });
    const source = new Assignments();
    source.current = [{ names: TRAIN, resource: RESOURCE, deviceIds: [...ids].reverse() }];
    const usage = await scanner(source).scan();
    expect(usage.map((u) => [u.device.uuid, u.deviceIndex, u.deviceIds, u.memoryLimitBytes])).toEqual([
      [GPU1, 0, [ids[0]], 3000 * MiB],
      [GPU0, 1, [ids[1]], 1000 * MiB],
    ]);
  });

  it('takes the limits from the region for an allocation.json without them, and skips GPUs not on the node', async () => {
    await allocationDir('old', {
      deviceIds: [`${GPU0}::3`, `${GONE}::0`],
      region: { uuids: [GPU0, GONE], memoryLimits: [4096 * MiB, 4096 * MiB], smLimits: [30, 30] },
    });
    const source = new Assignments();
    source.current = [{ names: TRAIN, resource: RESOURCE, deviceIds: [`${GPU0}::3`, `${GONE}::0`] }];
    const usage = await scanner(source).scan();
    expect(usage).toHaveLength(1);
    expect(usage[0]).toMatchObject({
      device: { uuid: GPU0 },
      memoryLimitBytes: 4096 * MiB,
      smLimitRatio: 0.3,
    });
  });

  it('gives reused device IDs to the newest directory naming them', async () => {
    const ids = [`${GPU0}::0`];
    await allocationDir('earlier', { deviceIds: ids, allocatedAt: '2026-01-01T00:00:00.000Z' });
    await allocationDir('later', { deviceIds: ids, allocatedAt: '2026-01-02T00:00:00.000Z' });
    const source = new Assignments();
    source.current = [{ names: SERVE, resource: RESOURCE, deviceIds: ids }];
    expect((await scanner(source).scan()).map((u) => u.allocation)).toEqual(['later']);
  });

  it('logs a foreign region file and a directory without the allocation file once each, and keeps going', async () => {
    const dir = await allocationDir('x', {
      deviceIds: [`${GPU0}::0`],
      limits: [{ uuid: GPU0, memoryMiB: 1024, corePercent: 10 }],
    });
    await writeFile(path.join(dir, 'x.cache'), encodeRegion({ magic: 42 }));
    await mkdir(path.join(hookPath, 'containers', 'stray'));
    const source = new Assignments();
    source.current = [{ names: TRAIN, resource: RESOURCE, deviceIds: [`${GPU0}::0`] }];
    const s = scanner(source);
    for (let i = 0; i < 3; i++) {
      const usage = await s.scan();
      expect(usage).toEqual([expect.objectContaining({ memoryLimitBytes: 1024 * MiB, smLimitRatio: 0.1 })]);
      expect(usage[0]).not.toHaveProperty('hami');
    }
    const warnings = logs.filter((l) => l.level === 40).map((l) => `${l.msg} ${JSON.stringify(l)}`);
    expect(warnings).toHaveLength(2);
    expect(warnings.find((w) => w.includes('x.cache'))).toMatch(/magic 42 is not HAMi-core's/);
    expect(warnings.find((w) => w.includes('stray'))).toMatch(/allocation\.json: ENOENT.*left alone/);
  });
});

describe('split directories: allocation.json read once per version of the file', () => {
  const ids = [`${GPU0}::0`];
  const content = (memoryMiB: number) =>
    `${JSON.stringify({
      resource: RESOURCE,
      deviceIds: ids,
      limits: [{ uuid: GPU0, memoryMiB, corePercent: 10 }],
      allocatedAt: '2026-01-01T00:00:00.000Z',
    })}\n`;
  // Whole milliseconds: utimes puts these back exactly (a file's own mtime has nanoseconds).
  const T1 = new Date('2026-01-01T00:00:01.000Z');
  const T2 = new Date('2026-01-01T00:00:02.000Z');
  const memoryLimits = async (s: SplitDirectories) => (await s.scan()).map((u) => u.memoryLimitBytes);

  /** `content` in `file` with mtime `when`: rewritten in place (same inode). */
  async function write(file: string, memoryMiB: number, when: Date): Promise<void> {
    await writeFile(file, content(memoryMiB));
    await utimes(file, when, when);
  }

  it('re-reads a file whose mtime, size or inode changed, not an unchanged one, and forgets removed directories', async () => {
    const dir = await allocationDir('a', { deviceIds: ids });
    const file = path.join(dir, 'allocation.json');
    await write(file, 1000, T1);
    const source = new Assignments();
    source.current = [{ names: TRAIN, resource: RESOURCE, deviceIds: ids }];
    const s = scanner(source);
    expect(await memoryLimits(s)).toEqual([1000 * MiB]);

    // Same mtime, size and inode: not read again, so the scan still reports what it read first.
    await write(file, 2000, T1);
    expect(await memoryLimits(s)).toEqual([1000 * MiB]);
    // A later mtime: read again.
    await utimes(file, T2, T2);
    expect(await memoryLimits(s)).toEqual([2000 * MiB]);
    // Another size: read again.
    await write(file, 30000, T2);
    expect(await memoryLimits(s)).toEqual([30000 * MiB]);
    // Another file (inode) of the same size and mtime, renamed into place: read again.
    const replacement = path.join(root, 'replacement.json');
    await write(replacement, 40000, T2);
    await rename(replacement, file);
    expect(await memoryLimits(s)).toEqual([40000 * MiB]);

    // The directory goes (its file kept aside) for one scan, then comes back with the same file (inode,
    // size, mtime) holding other limits: read again, so the directory was forgotten when it went.
    const aside = path.join(root, 'aside.json');
    await rename(file, aside);
    await rm(dir, { recursive: true });
    expect(await memoryLimits(s)).toEqual([]);
    await mkdir(dir);
    await rename(aside, file);
    await write(file, 50000, T2);
    expect(await memoryLimits(s)).toEqual([50000 * MiB]);
  });
});

describe('split directories: garbage collection', () => {
  it('removes a directory no container holds once the grace period has passed, and logs it', async () => {
    await allocationDir('done', { deviceIds: [`${GPU0}::0`], ageMs: GRACE });
    await allocationDir('live', { deviceIds: [`${GPU0}::1`], ageMs: GRACE });
    const source = new Assignments();
    source.current = [{ names: TRAIN, resource: RESOURCE, deviceIds: [`${GPU0}::1`] }];
    const s = scanner(source);
    await s.scan();
    clock += GRACE - 1;
    await s.scan();
    expect(await remaining()).toEqual(['done', 'live']);
    clock += 1;
    await s.scan();
    expect(await remaining()).toEqual(['live']);
    expect(removals()).toEqual([
      expect.objectContaining({
        dir: path.join(hookPath, 'containers', 'done'),
        deviceIds: [`${GPU0}::0`],
        resource: RESOURCE,
        unheldSeconds: GRACE / 1000,
      }),
    ]);
  });

  it('removes an earlier holder of reused device IDs, never the current one', async () => {
    const ids = [`${GPU0}::0`];
    await allocationDir('earlier', {
      deviceIds: ids,
      allocatedAt: '2026-01-01T00:00:00.000Z',
      ageMs: 2 * GRACE,
    });
    await allocationDir('later', {
      deviceIds: ids,
      allocatedAt: '2026-01-02T00:00:00.000Z',
      ageMs: 2 * GRACE,
    });
    const source = new Assignments();
    source.current = [{ names: SERVE, resource: RESOURCE, deviceIds: ids }];
    const s = scanner(source);
    await s.scan();
    clock += GRACE;
    await s.scan();
    expect(await remaining()).toEqual(['later']);
  });

  it('deletes nothing while kubelet does not answer, however long, and restarts the clock on a hold', async () => {
    await allocationDir('a', { deviceIds: [`${GPU0}::0`], ageMs: GRACE });
    const source = new Assignments();
    source.current = undefined;
    const s = scanner(source);
    await s.scan();
    clock += 10 * GRACE;
    expect(await s.scan()).toEqual([]);
    source.current = new Error('connect ENOENT kubelet.sock');
    clock += 10 * GRACE;
    await s.scan();
    expect(await remaining()).toEqual(['a']);
    expect(logs.filter((l) => l.msg === 'cannot read device allocations')).toHaveLength(1);

    // Unheld, then held again before the grace period ends, then unheld: the clock starts over.
    source.current = [];
    await s.scan();
    clock += GRACE - 1000;
    source.current = [{ names: TRAIN, resource: RESOURCE, deviceIds: [`${GPU0}::0`] }];
    await s.scan();
    source.current = [];
    clock += 1000;
    await s.scan();
    expect(await remaining()).toEqual(['a']);
    clock += GRACE;
    await s.scan();
    expect(await remaining()).toEqual([]);
  });

  it('keeps a directory whose devices a container holds without a directory of its own', async () => {
    await allocationDir('mine', { deviceIds: [`${GPU0}::0`, `${GPU0}::1`], ageMs: GRACE });
    const source = new Assignments();
    // The same IDs in another grouping: the directory may still be this container's.
    source.current = [{ names: TRAIN, resource: RESOURCE, deviceIds: [`${GPU0}::0`] }];
    const s = scanner(source);
    await s.scan();
    clock += 2 * GRACE;
    await s.scan();
    expect(await remaining()).toEqual(['mine']);
  });

  it('never removes one in use: a region written recently that lists a process, or a locked region', async () => {
    const running = { processes: [{ pid: 9, devices: [{ total: MiB }] }] };
    await allocationDir('busy', { deviceIds: [`${GPU0}::0`], region: running, ageMs: GRACE });
    const locked = await allocationDir('locked', { deviceIds: [`${GPU0}::1`], region: {}, ageMs: 3 * GRACE });
    await allocationDir('leftover', { deviceIds: [`${GPU0}::2`], region: running, ageMs: 3 * GRACE });
    const { dev, ino } = await stat(path.join(locked, 'locked.cache'), { bigint: true });
    const [major, minor] = lockKey(dev, ino).split(':').map(BigInt) as [bigint, bigint];
    await writeFile(
      path.join(hostProc, 'locks'),
      `1: POSIX  ADVISORY  WRITE 4242 ${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino} 0 2008952\n`,
    );
    const s = scanner(new Assignments());
    await s.scan();
    clock += GRACE;
    // libvgpu's watcher keeps writing busy's region.
    const now = new Date(clock);
    await utimes(path.join(hookPath, 'containers', 'busy', 'busy.cache'), now, now);
    await s.scan();
    // leftover lists a process nobody has written for the grace period: killed without cleanup.
    expect(await remaining()).toEqual(['busy', 'locked']);
    const kept = logs.filter((l) => String(l.msg).startsWith('split directory kept'));
    expect(kept.map((l) => l.reason)).toEqual([
      expect.stringMatching(/busy\.cache lists 1 process/),
      expect.stringMatching(/locked\.cache is locked/),
    ]);
  });
});
