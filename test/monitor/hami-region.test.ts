/**
 * The HAMi-core shared-region reader on binary files written in libvgpu's layout: limits, device
 * UUIDs, live process slots and their accounting, and a clear error (naming the file) for every way a
 * file can be missing, half-written or not a region at all.
 */
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSharedRegion, SharedRegionError } from '../../src/monitor/hami-region.js';
import { encodeRegion, REGION_SIZE, writeRegionFile } from '../helpers/hami-region-file.js';

const GPU0 = 'GPU-11111111-2222-3333-4444-555555555555';
const GPU1 = 'GPU-66666666-7777-8888-9999-aaaaaaaaaaaa';
const GiB = 1024 ** 3;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hami-region-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectProblem(file: string, problem: string, message: RegExp): Promise<void> {
  const error = await readSharedRegion(file).catch((err: unknown) => err);
  expect(error).toBeInstanceOf(SharedRegionError);
  expect((error as SharedRegionError).problem).toBe(problem);
  expect((error as Error).message).toContain(file);
  expect((error as Error).message).toMatch(message);
}

describe('readSharedRegion', () => {
  it('reads the limits, device UUIDs and every live process slot with its accounting', async () => {
    const file = path.join(dir, 'a.cache');
    await writeRegionFile(file, {
      uuids: [GPU0, GPU1],
      memoryLimits: [10 * GiB, 5 * GiB],
      smLimits: [30, 30],
      priority: 0,
      lastKernelTime: 1_790_000_000,
      processes: [
        {
          pid: 12,
          hostPid: 4012,
          devices: [
            { context: 300, module: 20, data: 1000, total: 1320, monitorUsed: 1500, smUtil: 25 },
            { total: 0 },
          ],
        },
        { pid: 13, status: 0, devices: [{ total: 999 }] }, // exited: HAMi-core zeroed its status
        { pid: 14, status: 2, devices: [{ total: 0 }, { total: 2 * GiB, smUtil: 7 }] },
      ],
    });
    const region = await readSharedRegion(file);
    expect(region.version).toEqual({ major: 1, minor: 2 });
    expect(region.devices).toEqual([
      { index: 0, uuid: GPU0, memoryLimitBytes: 10 * GiB, smLimitPercent: 30 },
      { index: 1, uuid: GPU1, memoryLimitBytes: 5 * GiB, smLimitPercent: 30 },
    ]);
    expect(region.priority).toBe(0);
    expect(region.lastKernelTimeSeconds).toBe(1_790_000_000);
    expect(region.processes.map((p) => [p.pid, p.hostPid, p.status])).toEqual([
      [12, 4012, 1],
      [14, 14, 2],
    ]);
    expect(region.processes[0]!.devices[0]).toEqual({
      contextBytes: 300,
      moduleBytes: 20,
      dataBytes: 1000,
      totalBytes: 1320,
      monitorUsedBytes: 1500,
      smUtilPercent: 25,
    });
    expect(region.processes[1]!.devices[1]).toMatchObject({ totalBytes: 2 * GiB, smUtilPercent: 7 });
  });

  it('reads only the first proc_num slots, and takes devices from the limits before NVML filled device_num', async () => {
    const file = path.join(dir, 'b.cache');
    await writeRegionFile(file, {
      deviceCount: 0,
      memoryLimits: [4 * GiB],
      processes: [
        { pid: 20, devices: [{ total: 100 }] },
        { pid: 21, devices: [{ total: 200 }] },
      ],
      processCount: 1,
    });
    const region = await readSharedRegion(file);
    expect(region.devices).toEqual([
      { index: 0, uuid: undefined, memoryLimitBytes: 4 * GiB, smLimitPercent: 100 },
    ]);
    expect(region.processes.map((p) => p.pid)).toEqual([20]);
  });

  it('leaves out a slot that stays mid-update (odd seqlock) and keeps the others', async () => {
    const file = path.join(dir, 'c.cache');
    await writeRegionFile(file, {
      uuids: [GPU0],
      processes: [
        { pid: 30, seqlock: 7, devices: [{ total: 1 }] },
        { pid: 31, seqlock: 8, devices: [{ total: 2 }] },
      ],
    });
    expect((await readSharedRegion(file)).processes.map((p) => p.pid)).toEqual([31]);
  });

  it('names the file and the problem for a missing, half-written, foreign or corrupt file', async () => {
    const at = (name: string) => path.join(dir, name);
    await expectProblem(at('none.cache'), 'missing', /cannot open \(ENOENT\)/);

    await writeRegionFile(at('short.cache'), { uuids: [GPU0] });
    await truncate(at('short.cache'), 4096);
    await expectProblem(at('short.cache'), 'truncated', /4096 bytes, shorter than .* \(2008952\)/);

    await writeFile(at('zero.cache'), Buffer.alloc(REGION_SIZE + 1));
    await expectProblem(at('zero.cache'), 'uninitialized', /not initialised/);

    await writeFile(at('foreign.cache'), encodeRegion({ magic: 0x7f454c46 }));
    await expectProblem(at('foreign.cache'), 'foreign', /magic 2135247942 is not HAMi-core's 19920718/);

    await writeFile(at('v2.cache'), encodeRegion({ major: 2, minor: 0 }));
    await expectProblem(at('v2.cache'), 'unsupported', /version 2\.0, this reader knows 1\.x/);

    await writeFile(at('procs.cache'), encodeRegion({ processCount: -3 }));
    await expectProblem(at('procs.cache'), 'corrupt', /proc_num -3 is outside 0\.\.1024/);

    await writeFile(at('devices.cache'), encodeRegion({ deviceCount: 17 }));
    await expectProblem(at('devices.cache'), 'corrupt', /device_num 17 is over 16/);
  });
});
