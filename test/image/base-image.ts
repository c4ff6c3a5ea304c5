/**
 * A local stand-in for the official `node:24-bookworm-slim`, which no machine of ours can pull (no
 * container registry is reachable): Debian bookworm minbase from Debian's packages (mmdebstrap), Node 24
 * from the npm registry's node-linux-<arch> package and npm from its npm package, laid out as in the
 * official image (node and the npm/npx links in /usr/local/bin, npm in /usr/local/lib/node_modules, user
 * and group `node` with id 1000), so the project's Dockerfile builds on it unchanged.
 *
 * The root file system tarball is the slow part (tens of seconds to minutes): it is cached in
 * .ci/cache under a name derived from the mmdebstrap options, written atomically, and rebuilt once a
 * week so the stand-in follows Debian's security updates.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ContainerTools } from './containers.js';

export interface NodeBaseOptions {
  /** .ci/cache: rootfs tarball, Node binary, npm tarball */
  cacheDir: string;
  /** the repository root (for .ci/fetch-node.sh) */
  root: string;
  nodeVersion: string;
  npmVersion: string;
  tag: string;
}

const ROOTFS_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

function mmdebstrapArgs(sources: string | undefined, output: string): string[] {
  return [
    '--variant=minbase',
    '--include=ca-certificates',
    // merged /usr from the start: without this hook mmdebstrap pulls usrmerge and a full perl in.
    '--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr',
    '--dpkgopt=path-exclude=/usr/share/man/*',
    '--dpkgopt=path-exclude=/usr/share/doc/*',
    '--dpkgopt=path-include=/usr/share/doc/*/copyright',
    '--dpkgopt=path-exclude=/usr/share/locale/*',
    '--aptopt=Acquire::Languages "none"',
    '--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"',
    'bookworm',
    output,
    // The machine's own apt sources: RUN steps in later builds then use the archive the machine reaches.
    ...(sources ? [sources] : []),
  ];
}

function aptSources(): string | undefined {
  return ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'].find((file) => existsSync(file));
}

/** The cached bookworm minbase tarball, built when missing or older than a week. */
export async function bookwormRootfs(tools: ContainerTools, cacheDir: string): Promise<string> {
  const sources = aptSources();
  const key = createHash('sha256')
    .update(JSON.stringify(mmdebstrapArgs(sources, '')))
    .digest('hex')
    .slice(0, 12);
  const tarball = path.join(cacheDir, `bookworm-minbase-${key}.tar`);
  const built = await stat(tarball).catch(() => undefined);
  if (built && Date.now() - built.mtimeMs < ROOTFS_MAX_AGE_MS) return tarball;
  await mkdir(cacheDir, { recursive: true });
  const partial = `${tarball}.${process.pid}.partial`;
  try {
    await tools.exec('mmdebstrap', mmdebstrapArgs(sources, partial));
    await rename(partial, tarball);
  } finally {
    await rm(partial, { force: true });
  }
  return tarball;
}

async function npmTarball(tools: ContainerTools, cacheDir: string, version: string): Promise<string> {
  const tarball = path.join(cacheDir, `npm-${version}.tgz`);
  if (existsSync(tarball)) return tarball;
  const work = path.join(cacheDir, `.npm-${version}-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    await tools.exec('npm', ['pack', '--silent', '--pack-destination', work, `npm@${version}`]);
    await rename(path.join(work, `npm-${version}.tgz`), tarball);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return tarball;
}

/** Builds the stand-in base image into the private storage under `options.tag`. */
export async function buildNodeBase(tools: ContainerTools, options: NodeBaseOptions): Promise<void> {
  const rootfs = await bookwormRootfs(tools, options.cacheDir);
  const nodeBin = (
    await tools.exec(path.join(options.root, '.ci/fetch-node.sh'), [options.nodeVersion])
  ).trim();
  const npm = await npmTarball(tools, options.cacheDir, options.npmVersion);
  const container = (await tools.buildah(['from', '--pull=never', 'scratch'])).trim();
  await tools.buildah(['add', container, rootfs, '/']);
  await tools.buildah(['add', container, path.join(nodeBin, 'node'), '/usr/local/bin/node']);
  // ADD unpacks the tarball: its top directory is `package`.
  await tools.buildah(['add', container, npm, '/usr/local/lib/node_modules/']);
  await tools.buildah([
    'run',
    '--network=host',
    container,
    '--',
    'sh',
    '-ec',
    [
      'mv /usr/local/lib/node_modules/package /usr/local/lib/node_modules/npm',
      'chmod 755 /usr/local/bin/node',
      'ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm',
      'ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx',
      'groupadd --gid 1000 node',
      'useradd --uid 1000 --gid node --shell /bin/bash --create-home node',
      'node --version && npm --version',
    ].join('\n'),
  ]);
  await tools.buildah([
    'config',
    '--env',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    '--env',
    `NODE_VERSION=${options.nodeVersion}`,
    '--env',
    'NPM_CONFIG_UPDATE_NOTIFIER=false',
    '--cmd',
    '["node"]',
    container,
  ]);
  await tools.buildah(['commit', '--rm', container, options.tag]);
}
