/**
 * The hostPID check on generated /proc trees: by `<proc>/1/ns/pid` when it can be read, by
 * `<proc>/self` when it cannot (ptrace access denied), and by the initial namespace's fixed inode when
 * `--host-proc` is the monitor's own /proc.
 */
import { mkdir, mkdtemp, readlink, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkHostPidNamespace, INITIAL_PID_NAMESPACE } from '../../src/monitor/host-pid.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A /proc tree with the given symlinks (path inside it → link text). */
async function procTree(links: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'vgpu-host-pid-'));
  dirs.push(root);
  for (const [name, target] of Object.entries(links)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await symlink(target, path.join(root, name));
  }
  return root;
}

describe('checkHostPidNamespace', () => {
  it("compares the host /proc's init namespace with the monitor's own", async () => {
    const own = await readlink('/proc/self/ns/pid');
    const hostPid = await procTree({ '1/ns/pid': own });
    const separate = await procTree({ '1/ns/pid': 'pid:[4026532999]' });
    expect(await checkHostPidNamespace({ hostProc: hostPid })).toMatchObject({ shared: true });
    const check = await checkHostPidNamespace({ hostProc: separate });
    expect(check.shared).toBe(false);
    expect(check.method).toContain('pid:[4026532999]');
  });

  it("falls back to the monitor's PID as the host /proc sees it when 1/ns/pid cannot be read", async () => {
    const hostProc = await procTree({ self: '4242' });
    expect(await checkHostPidNamespace({ hostProc, pid: 4242 })).toMatchObject({ shared: true });
    // Without hostPID the host sees the monitor under another PID than the one it has in its pod.
    expect(await checkHostPidNamespace({ hostProc, pid: 7 })).toMatchObject({ shared: false });
  });

  it('asks for the initial namespace when --host-proc is the monitor’s own /proc', async () => {
    const onHost = await procTree({ 'self/ns/pid': INITIAL_PID_NAMESPACE });
    const inPod = await procTree({ 'self/ns/pid': 'pid:[4026532777]' });
    expect(await checkHostPidNamespace({ hostProc: onHost, ownProc: onHost })).toMatchObject({
      shared: true,
    });
    expect(await checkHostPidNamespace({ hostProc: inPod, ownProc: inPod })).toMatchObject({
      shared: false,
    });
  });

  it('cannot tell when the host /proc gives neither link', async () => {
    const hostProc = await procTree({});
    const check = await checkHostPidNamespace({ hostProc });
    expect(check.shared).toBeUndefined();
    expect(check.method).toContain('neither');
  });
});
