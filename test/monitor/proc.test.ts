/**
 * HostProcesses on a generated host /proc: attribution of every runtime/driver shape the fixture
 * builds, the (pid, start time) cache, exited processes and reused PIDs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HostProcesses, startTimeOf } from '../../src/monitor/proc.js';
import {
  type ContainerCgroupOptions,
  containerCgroup,
  FakeHostProc,
  hostCgroup,
} from '../helpers/fake-proc.js';

const POD_A = '11111111-2222-4333-8444-555555555555';
const POD_B = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const CTR_A = 'a'.repeat(64);
const CTR_B = 'b'.repeat(64);

let proc: FakeHostProc | undefined;
afterEach(async () => {
  await proc?.remove();
  proc = undefined;
});

describe('HostProcesses', () => {
  it('attributes processes in every runtime, driver and cgroup version the fixture builds', async () => {
    proc = await FakeHostProc.create();
    const shapes: ContainerCgroupOptions[] = [];
    for (const runtime of ['containerd', 'crio', 'docker'] as const) {
      for (const driver of ['systemd', 'cgroupfs'] as const) {
        for (const qos of ['Guaranteed', 'Burstable', 'BestEffort'] as const) {
          for (const version of [1, 2] as const) {
            shapes.push({ podUid: POD_A, containerId: CTR_A, runtime, driver, qos, version });
          }
        }
      }
    }
    await proc.add(...shapes.map((shape, i) => ({ pid: 100 + i, cgroup: containerCgroup(shape) })));
    const processes = new HostProcesses(proc.root);
    for (const [i, shape] of shapes.entries()) {
      const found = await processes.lookup(100 + i);
      expect(found?.owner, JSON.stringify(shape)).toEqual({
        podUid: POD_A,
        containerId: CTR_A,
        qos: shape.qos,
      });
    }
  });

  it('gives no owner to a process outside Kubernetes, and undefined for a process that exited', async () => {
    proc = await FakeHostProc.create();
    await proc.add({ pid: 7, cgroup: hostCgroup() });
    const processes = new HostProcesses(proc.root);
    expect(await processes.lookup(7)).toMatchObject({ pid: 7, owner: undefined });
    expect(await processes.lookup(8)).toBeUndefined();
    await proc.exit(7);
    expect(await processes.lookup(7)).toBeUndefined();
    expect(processes.cachedCount).toBe(0);
  });

  it('re-reads the cgroup of a reused PID (another start time) and keeps the cached answer otherwise', async () => {
    proc = await FakeHostProc.create();
    await proc.add({ pid: 42, cgroup: containerCgroup({ podUid: POD_A, containerId: CTR_A }) });
    const processes = new HostProcesses(proc.root);
    const first = await processes.lookup(42);
    expect(first?.owner?.podUid).toBe(POD_A);

    // Same process: the cgroup file is not read again (a changed file would not be noticed).
    await proc.add({
      pid: 42,
      startTime: Number(first!.startTime),
      cgroup: containerCgroup({ podUid: POD_B, containerId: CTR_B }),
    });
    expect((await processes.lookup(42))?.owner?.podUid).toBe(POD_A);

    // A new process with the same PID: attributed to its own container.
    await proc.reusePid(42, containerCgroup({ podUid: POD_B, containerId: CTR_B }));
    const second = await processes.lookup(42);
    expect(second?.startTime).not.toBe(first?.startTime);
    expect(second?.owner).toMatchObject({ podUid: POD_B, containerId: CTR_B });
  });

  it('forgets processes that are no longer seen', async () => {
    proc = await FakeHostProc.create();
    await proc.add({ pid: 1, cgroup: hostCgroup() }, { pid: 2, cgroup: hostCgroup() });
    const processes = new HostProcesses(proc.root);
    await processes.lookup(1);
    await processes.lookup(2);
    processes.retainOnly(new Set([2]));
    expect(processes.cachedCount).toBe(1);
  });
});

describe('startTimeOf', () => {
  it('counts fields after the last parenthesis, so a command name with spaces and parentheses is fine', () => {
    const rest = Array.from({ length: 50 }, (_, i) => String(i + 3)).join(' ');
    expect(startTimeOf(`123 (a) b) c) ${rest}`)).toBe('22');
  });

  it('names the file when there is no start time', () => {
    expect(() => startTimeOf('123 (x) S 1', '/host/proc/123/stat')).toThrow(/\/host\/proc\/123\/stat/);
  });
});
