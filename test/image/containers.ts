/**
 * buildah and podman with a private storage for the image test: graph root, run root, temp files and
 * configuration all live in one temporary directory, so the test never reads or changes the machine's
 * default container storage (nor other users' images), and removing that directory removes everything
 * the test built. Every command's output goes to a log file; a failing command throws with its tail.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Runs a program, collecting its output; never throws for a non-zero exit (the caller decides). */
export function run(
  program: string,
  args: readonly string[],
  options: SpawnOptions & { input?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', (error) => reject(new Error(`${program}: ${error.message}`)));
    child.once('close', (code) => resolve({ stdout, stderr, code }));
    child.stdin!.end(options.input ?? '');
  });
}

export class ContainerTools {
  private constructor(
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {}

  /** A fresh private storage under the system temp directory. */
  static async create(): Promise<ContainerTools> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-image-test-'));
    await mkdir(path.join(dir, 'tmp'));
    await writeFile(
      path.join(dir, 'storage.conf'),
      `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/storage"\nrunroot = "${dir}/run"\n`,
    );
    // Without explicit limits podman asks for rlimits above what root may set in our VMs. runc, where
    // installed: crun refuses the hybrid cgroup layout of our VMs ("cgroups in hybrid mode not supported").
    const runtime = existsSync('/usr/sbin/runc') ? '\n[engine]\nruntime = "runc"\n' : '';
    await writeFile(
      path.join(dir, 'containers.conf'),
      `[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n${runtime}`,
    );
    const env = {
      ...process.env,
      CONTAINERS_STORAGE_CONF: path.join(dir, 'storage.conf'),
      CONTAINERS_CONF: path.join(dir, 'containers.conf'),
      TMPDIR: path.join(dir, 'tmp'),
    };
    return new ContainerTools(dir, env, path.join(dir, 'commands.log'));
  }

  buildah(args: readonly string[]): Promise<string> {
    return this.exec('buildah', args);
  }

  podman(args: readonly string[]): Promise<string> {
    return this.exec('podman', args);
  }

  /** Runs a command in this storage's environment; throws with the output's tail when it fails. */
  async exec(program: string, args: readonly string[]): Promise<string> {
    const result = await this.tryExec(program, args);
    if (result.code !== 0) {
      const tail = `${result.stdout}${result.stderr}`.trimEnd().split('\n').slice(-40).join('\n');
      throw new Error(`${program} ${args.join(' ')} exited with ${result.code}:\n${tail}`);
    }
    return result.stdout;
  }

  async tryExec(program: string, args: readonly string[]): Promise<CommandResult> {
    const result = await run(program, args, { env: this.env });
    await appendFile(
      this.logFile,
      `$ ${program} ${args.join(' ')}\n${result.stdout}${result.stderr}[exit ${result.code}]\n`,
    );
    return result;
  }

  async log(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  /** Removes every container and image of this private storage, then the storage itself. */
  async remove(): Promise<void> {
    await this.tryExec('podman', ['rm', '--all', '--force']);
    await this.tryExec('buildah', ['rm', '--all']);
    await this.tryExec('podman', ['rmi', '--all', '--force']);
    await unmountBelow(path.join(this.dir, 'storage'));
    await unmountBelow(path.join(this.dir, 'run'));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Overlay mounts left under a directory (a killed build) would make removing it fail. */
async function unmountBelow(dir: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  const targets = mounts
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((target): target is string => target?.startsWith(`${dir}/`) ?? false)
    .sort((a, b) => b.length - a.length);
  for (const target of targets) await run('umount', ['-l', target]);
}
