#!/usr/bin/env node
/**
 * Installs koffi's prebuilt native module for each given platform (`linux-x64`, `linux-arm64`, ...) into
 * ./node_modules/@koromix/, at the version and integrity that package-lock.json records. npm installs
 * the prebuilt of the machine's own CPU only; the image's dependency stage runs on the build machine's
 * CPU and must serve amd64 and arm64 images alike, so it installs with --omit=optional and calls this.
 * Only the glibc build of each platform is kept (the image is Debian); the musl one is dropped.
 *
 *   node scripts/koffi-prebuilts.mjs linux-x64 linux-arm64
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function lockEntry(lock, name) {
  const entry = lock.packages?.[`node_modules/${name}`];
  if (!entry?.version || !entry.integrity) {
    throw new Error(`koffi-prebuilts: package-lock.json has no version and integrity for ${name}`);
  }
  return entry;
}

function install(lock, platform) {
  const name = `@koromix/koffi-${platform}`;
  const { version, integrity } = lockEntry(lock, name);
  const work = mkdtempSync(path.join(os.tmpdir(), 'koffi-prebuilt-'));
  try {
    const file = execFileSync('npm', ['pack', '--silent', '--pack-destination', work, `${name}@${version}`], {
      encoding: 'utf8',
    }).trim();
    const tarball = path.join(work, file.split('\n').pop());
    const [algorithm, expected] = integrity.split(/-(.*)/s);
    const actual = createHash(algorithm).update(readFileSync(tarball)).digest('base64');
    if (actual !== expected)
      throw new Error(`koffi-prebuilts: ${name}@${version} does not match the lockfile`);
    const target = path.join('node_modules', name);
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
    for (const entry of readdirSync(target)) {
      if (entry.startsWith('musl_')) rmSync(path.join(target, entry), { recursive: true });
    }
    const binary = path.join(target, platform.replace('-', '_'), 'koffi.node');
    if (!existsSync(binary)) throw new Error(`koffi-prebuilts: ${name}@${version} has no ${binary}`);
    console.log(`koffi-prebuilts: ${name}@${version} installed`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const platforms = process.argv.slice(2);
if (platforms.length === 0) {
  console.error('usage: node scripts/koffi-prebuilts.mjs PLATFORM... (e.g. linux-x64 linux-arm64)');
  process.exit(2);
}
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
for (const platform of platforms) install(lock, platform);
