/**
 * A generated host /proc for the monitor's tests and the demo: `<root>/<pid>/stat` and
 * `<root>/<pid>/cgroup` for the processes declared, in the shapes kubelet and the container runtimes
 * produce, and `<root>/1/ns/pid` saying whose PID namespace it is. Files are replaced atomically
 * (tmp + rename), so a reader never sees half a file. Use a MockNode's `hostPaths.procRoot` as the
 * root to keep one simulated host.
 */
import { mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { QosClass } from '../monitor/cgroup.js';

export interface FakeProcess {
  pid: number;
  /** the whole /proc/<pid>/cgroup text (see containerCgroup / hostCgroup) */
  cgroup: string;
  /** stat field 22; default: a fresh value, later than any given before */
  startTime?: number;
  comm?: string;
}

export interface ContainerCgroupOptions {
  podUid: string;
  containerId: string;
  qos?: QosClass;
  driver?: 'systemd' | 'cgroupfs';
  runtime?: 'containerd' | 'crio' | 'docker';
  version?: 1 | 2;
}

/** The cgroup text of a process in a Kubernetes container (default: v2, systemd, containerd, Burstable). */
export function containerCgroup(options: ContainerCgroupOptions): string {
  const { podUid, containerId, qos = 'Burstable', driver = 'systemd', runtime = 'containerd' } = options;
  const tier = qos === 'Guaranteed' ? '' : qos.toLowerCase();
  let cgroupPath: string;
  if (driver === 'systemd') {
    const prefix = { containerd: 'cri-containerd', crio: 'crio', docker: 'docker' }[runtime];
    const podSlice = `kubepods-${tier ? `${tier}-` : ''}pod${podUid.replaceAll('-', '_')}.slice`;
    const tierSlice = tier ? `/kubepods-${tier}.slice` : '';
    cgroupPath = `/kubepods.slice${tierSlice}/${podSlice}/${prefix}-${containerId}.scope`;
  } else {
    const leaf = runtime === 'crio' ? `crio-${containerId}` : containerId;
    cgroupPath = `/kubepods${tier ? `/${tier}` : ''}/pod${podUid}/${leaf}`;
  }
  if (options.version === 1) {
    return [
      `12:memory:${cgroupPath}`,
      `4:cpu,cpuacct:${cgroupPath}`,
      `1:name=systemd:${cgroupPath}`,
      '',
    ].join('\n');
  }
  return `0::${cgroupPath}\n`;
}

/** The cgroup text of a process outside Kubernetes (a host service). */
export function hostCgroup(unit = 'gpu-burn.service'): string {
  return `0::/system.slice/${unit}\n`;
}

/** A /proc/<pid>/stat line with `startTime` as field 22 and plausible zeros elsewhere. */
function statLine(pid: number, comm: string, startTime: number): string {
  const fields = Array.from({ length: 50 }, () => '0'); // fields 3..52
  fields[0] = 'S';
  fields[1] = '1';
  fields[22 - 3] = String(startTime);
  return `${pid} (${comm}) ${fields.join(' ')}\n`;
}

export class FakeHostProc {
  private lastStartTime = 1000;

  private constructor(
    readonly root: string,
    private readonly owned: boolean,
  ) {}

  /** In `root`, or in a fresh temporary directory that remove() deletes. */
  static async create(root?: string): Promise<FakeHostProc> {
    if (root) {
      await mkdir(root, { recursive: true });
      return new FakeHostProc(root, false);
    }
    return new FakeHostProc(await mkdtemp(path.join(os.tmpdir(), 'vgpu-fake-proc-')), true);
  }

  async add(...processes: FakeProcess[]): Promise<void> {
    for (const p of processes) {
      const startTime = p.startTime ?? ++this.lastStartTime;
      this.lastStartTime = Math.max(this.lastStartTime, startTime);
      const dir = path.join(this.root, String(p.pid));
      await mkdir(dir, { recursive: true });
      await this.replace(path.join(dir, 'cgroup'), p.cgroup);
      await this.replace(path.join(dir, 'stat'), statLine(p.pid, p.comm ?? 'python3', startTime));
    }
  }

  /**
   * Whose PID namespace this /proc shows, as `<root>/1/ns/pid` tells it: this process's own (a monitor
   * started from here runs as with hostPID: true), or another one (as without hostPID).
   */
  async setPidNamespace(shared: boolean): Promise<void> {
    const own = await readlink('/proc/self/ns/pid');
    const other = own === 'pid:[4026532001]' ? 'pid:[4026532002]' : 'pid:[4026532001]';
    const dir = path.join(this.root, '1/ns');
    await mkdir(dir, { recursive: true });
    await rm(path.join(dir, 'pid'), { force: true });
    await symlink(shared ? own : other, path.join(dir, 'pid'));
  }

  /** The process exits: its /proc directory goes away. */
  async exit(pid: number): Promise<void> {
    await rm(path.join(this.root, String(pid)), { recursive: true, force: true });
  }

  /** The PID goes to a new process (a later start time) in another cgroup. */
  async reusePid(pid: number, cgroup: string): Promise<void> {
    await this.exit(pid);
    await this.add({ pid, cgroup });
  }

  async remove(): Promise<void> {
    if (this.owned) await rm(this.root, { recursive: true, force: true });
  }

  private async replace(file: string, text: string): Promise<void> {
    const tmp = `${file}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, file);
  }
}
