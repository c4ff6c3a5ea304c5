/**
 * Container test harness: starts real containers (podman, as root) with exactly what the plugin's
 * Allocate answered, translated mechanically into podman flags the way a CRI runtime applies them.
 *
 * No image registry: the root filesystem is built here from the host's dash, its dynamic loader and
 * libraries (found with ldd), and programs compiled with cc (test/container/native). Podman runs
 * with private storage, run and temp directories, a containers.conf giving the rlimits root may set
 * (podman otherwise fails with "error setting rlimit type 7"), no network, a cgroup parent of its own
 * that is removed afterwards, and a non-root user. Everything created is removed by close().
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ContainerAllocateResponse__Output } from '../../src/kubelet-api/proto.js';

const run = promisify(execFile);
const nativeDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'native');
/** The user containers run as: a pod's non-root user, like most GPU workloads. */
export const CONTAINER_USER = '1000:1000';
/** HAMi-core's lock directory on the host, where the stand-in leaves a file per container. */
const HAMI_LOCK_DIR = '/tmp/vgpulock';
/** CDI annotation keys the runtime turns into CDI devices (containerd and CRI-O read this prefix). */
const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';

export interface ContainerRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout split in lines */
  lines: string[];
}

/**
 * Podman flags for one container response, field by field: envs → -e, mounts → -v (in the order
 * given; parents first), device specs → --device host:container:permissions, CDI devices and CDI
 * annotations → --device <kind>=<name>, other annotations → --annotation.
 */
export function podmanFlags(response: ContainerAllocateResponse__Output): string[] {
  const flags: string[] = [];
  for (const [name, value] of Object.entries(response.envs ?? {})) flags.push('-e', `${name}=${value}`);
  for (const mount of response.mounts ?? [])
    flags.push('-v', `${mount.host_path}:${mount.container_path}${mount.read_only ? ':ro' : ''}`);
  for (const device of response.devices ?? [])
    flags.push('--device', `${device.host_path}:${device.container_path}:${device.permissions}`);
  for (const device of response.cdi_devices ?? []) flags.push('--device', device.name);
  for (const [key, value] of Object.entries(response.annotations ?? {})) {
    flags.push('--annotation', `${key}=${value}`);
    if (key.startsWith(CDI_ANNOTATION_PREFIX))
      for (const name of value.split(',')) flags.push('--device', name);
  }
  return flags;
}

export class Podman {
  private readonly lockFiles = new Set<string>();
  private readonly standins = new Map<string, Promise<string>>();

  private constructor(
    /** private temp directory holding everything below */
    readonly dir: string,
    readonly rootfs: string,
    private readonly runtime: string,
    private readonly cgroupParent: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /**
   * Builds the root filesystem and checks a container starts. Throws an Error whose message says
   * why containers cannot run here (the caller skips the checks with it).
   */
  static async open(): Promise<Podman> {
    if (process.platform !== 'linux' || process.getuid?.() !== 0)
      throw new Error('they need root on Linux (podman as root, mknod for stand-in device nodes)');
    const runtimes = await runtimesOnPath();
    if (!(await onPath('podman'))) throw new Error('podman is not installed (.ci/run installs it)');
    if (!(await onPath('cc'))) throw new Error('no C compiler (cc) to build the test programs');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-container-'));
    try {
      const env = await privateConfig(dir);
      const rootfs = await buildRootfs(dir);
      const cgroupParent = `/${path.basename(dir)}`;
      // crun refuses hosts with controllers in a hybrid cgroup v2 tree; runc runs there.
      const failures: string[] = [];
      for (const runtime of runtimes) {
        const podman = new Podman(dir, rootfs, runtime, cgroupParent, env);
        const trial = await podman.exec(['/bin/sh', '-c', 'echo ready'], []);
        if (trial.code === 0 && trial.lines.includes('ready')) return podman;
        failures.push(`${runtime}: ${lastLine(trial.stderr)}`);
        await podman.removeCgroups();
      }
      throw new Error(`podman cannot start a container here (${failures.join('; ') || 'no OCI runtime'})`);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Compiles the stand-in libvgpu.so reporting `version` and returns its path (in this harness's dir). */
  buildStandin(version: string): Promise<string> {
    let built = this.standins.get(version);
    if (!built) {
      const output = path.join(this.dir, 'standins', version, 'libvgpu.so');
      built = mkdir(path.dirname(output), { recursive: true })
        .then(() =>
          compile(['-shared', '-fPIC', `-DSTANDIN_VERSION="${version}"`], 'standin-libvgpu.c', output),
        )
        .then(() => output);
      this.standins.set(version, built);
    }
    return built;
  }

  /** Runs `script` with /bin/sh in a container given exactly `response`. */
  async run(response: ContainerAllocateResponse__Output, script: string): Promise<ContainerRun> {
    const cache = response.envs?.CUDA_DEVICE_MEMORY_SHARED_CACHE;
    // The stand-in leaves <cache file>.lock in the host's lock directory: removed by close().
    if (cache) this.lockFiles.add(path.join(HAMI_LOCK_DIR, `${path.posix.basename(cache)}.lock`));
    return this.exec(['/bin/sh', '-c', script], podmanFlags(response));
  }

  async close(): Promise<void> {
    for (const file of this.lockFiles) await rm(file, { force: true });
    await this.removeCgroups();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async exec(command: string[], flags: string[]): Promise<ContainerRun> {
    const args = [
      '--runtime',
      this.runtime,
      'run',
      '--rm',
      '--network',
      'none',
      '--user',
      CONTAINER_USER,
      `--cgroup-parent=${this.cgroupParent}`,
      ...flags,
      '--rootfs',
      this.rootfs,
      ...command,
    ];
    try {
      const { stdout, stderr } = await run('podman', args, { env: this.env, timeout: 60_000 });
      return { code: 0, stdout, stderr, lines: stdout.split('\n').filter(Boolean) };
    } catch (err) {
      const failed = err as { code?: number | string; stdout?: string; stderr?: string };
      const stdout = failed.stdout ?? '';
      const code = typeof failed.code === 'number' ? failed.code : -1;
      return {
        code,
        stdout,
        stderr: failed.stderr ?? String(err),
        lines: stdout.split('\n').filter(Boolean),
      };
    }
  }

  /** The cgroups podman made under our parent in each hierarchy (cgroup v1 and v2 layouts). */
  private async removeCgroups(): Promise<void> {
    const root = '/sys/fs/cgroup';
    const hierarchies = [root, ...(await readdir(root).catch(() => [])).map((name) => path.join(root, name))];
    for (const hierarchy of hierarchies) await removeTree(path.join(hierarchy, this.cgroupParent));
  }
}

/** rmdir depth first (cgroup directories hold only pseudo-files); anything still in use stays. */
async function removeTree(dir: string): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) if (entry.isDirectory()) await removeTree(path.join(dir, entry.name));
  await rmdir(dir).catch(() => undefined);
}

async function privateConfig(dir: string): Promise<NodeJS.ProcessEnv> {
  const at = (name: string) => path.join(dir, name);
  await mkdir(at('tmp'));
  await writeFile(
    at('storage.conf'),
    `[storage]\ndriver = "vfs"\ngraphroot = "${at('storage')}"\nrunroot = "${at('run')}"\n`,
  );
  await writeFile(
    at('containers.conf'),
    [
      '[containers]',
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      '[engine]',
      `tmp_dir = "${at('engine')}"`,
      `volume_path = "${at('volumes')}"`,
      // file locks in tmp_dir instead of the host-wide /dev/shm segment
      'lock_type = "file"',
      'events_logger = "none"',
      'cgroup_manager = "cgroupfs"',
      '',
    ].join('\n'),
  );
  return {
    ...process.env,
    CONTAINERS_CONF: at('containers.conf'),
    CONTAINERS_STORAGE_CONF: at('storage.conf'),
    TMPDIR: at('tmp'),
  };
}

/** /bin/sh (the host's dash), /bin/probe, and the loader and libraries they link, at their host paths. */
async function buildRootfs(dir: string): Promise<string> {
  const rootfs = path.join(dir, 'rootfs');
  for (const sub of ['bin', 'etc', 'tmp']) await mkdir(path.join(rootfs, sub), { recursive: true });
  await run('chmod', ['1777', path.join(rootfs, 'tmp')]);
  const shell = (await run('sh', ['-c', 'command -v dash'])).stdout.trim();
  await copyFile(shell, path.join(rootfs, 'bin/sh'));
  const probe = path.join(rootfs, 'bin/probe');
  await compile([], 'probe.c', probe);
  for (const library of new Set([...(await linkedLibraries(shell)), ...(await linkedLibraries(probe))])) {
    await mkdir(path.join(rootfs, path.dirname(library)), { recursive: true });
    await copyFile(library, path.join(rootfs, library)); // follows symlinks: the file itself
  }
  return rootfs;
}

/** Absolute paths ldd names: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and the loader line. */
async function linkedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  return [...stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/g)].map((m) => m[1]!);
}

async function compile(flags: string[], source: string, output: string): Promise<void> {
  await run('cc', [
    '-O2',
    '-Wall',
    '-Wextra',
    '-Werror',
    ...flags,
    '-o',
    output,
    path.join(nativeDir, source),
  ]);
}

async function onPath(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    });
    return true;
  } catch {
    return false;
  }
}

async function runtimesOnPath(): Promise<string[]> {
  const found: string[] = [];
  for (const runtime of ['runc', 'crun']) if (await onPath(runtime)) found.push(runtime);
  return found;
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
}

/**
 * For a test file: the harness, or why there is none. `CONTAINER_CHECKS=require` (set by .ci/run,
 * which installs podman) turns "cannot run here" into a failure instead of a skip;
 * `CONTAINER_CHECKS=skip` skips them.
 */
export async function openPodmanOrReason(): Promise<Podman | string> {
  if (process.env.CONTAINER_CHECKS === 'skip') {
    console.warn('container checks skipped: CONTAINER_CHECKS=skip');
    return 'CONTAINER_CHECKS=skip';
  }
  try {
    return await Podman.open();
  } catch (err) {
    const reason = (err as Error).message;
    if (process.env.CONTAINER_CHECKS === 'require')
      throw new Error(`container checks required, but ${reason}`);
    console.warn(`container checks skipped: ${reason}`);
    return reason;
  }
}
