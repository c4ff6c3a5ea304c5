/**
 * What HAMi-core installation the host has under `split.hookPath`, and whether a container given
 * it would load the library. HAMi-core only acts when ld.so preloads it, and ld.so preloads exactly
 * the paths /etc/ld.so.preload names: so the host's preload file is read the way glibc reads it and
 * the library is mounted at each libvgpu path it names. A preload file naming a file that is not
 * there makes every process in the container print an ld.so error, hence the all-or-nothing verdict.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

const PRELOAD_FILE_NAME = 'ld.so.preload';

export interface HamiCoreHost {
  /** `split.hookPath`: host directory of HAMi-core (HAMi's `HOOK_PATH` + `/vgpu`); same path in the agent */
  hookPath: string;
  /** host file serving every libvgpu entry: the highest `libvgpu.so.<version>`, else `libvgpu.so`; null if none */
  library: string | null;
  /** `<hookPath>/ld.so.preload` and its entries, or null when the file is missing or unreadable */
  preload: { file: string; entries: string[] } | null;
}

/** What a split container's /etc/ld.so.preload will ask for. */
export interface PreloadPlan {
  /** absolute libvgpu paths the preload file names: the host library is mounted at each */
  libraryPaths: string[];
  /** other entries: the container image must provide them, or ld.so complains in every process */
  otherEntries: string[];
}

/** `libvgpu.so.2.5.0`, `libvgpu.so.v2.9.0` (HAMi's image tag), `libvgpu.so.v2.9.0-1a2b3c4` */
const VERSIONED_LIBRARY = /^libvgpu\.so\.(v?\d+(?:\.\d+)*(?:-[0-9A-Za-z.-]+)?)$/;

function isLibvgpuName(name: string): boolean {
  return name === 'libvgpu.so' || VERSIONED_LIBRARY.test(name);
}

/**
 * Entries of an ld.so.preload file as glibc's rtld reads it: `#` starts a comment that runs to the
 * end of the line, and names are separated by spaces, tabs, newlines or `:`.
 */
export function parsePreloadList(text: string): string[] {
  const withoutComments = text.replace(/#[^\n]*/g, ' ');
  return withoutComments.split(/[ \t\n:]+/).filter((entry) => entry !== '');
}

export function preloadPlan(host: HamiCoreHost): PreloadPlan {
  const libraryPaths = new Set<string>();
  const otherEntries = new Set<string>();
  for (const entry of host.preload?.entries ?? []) {
    // A bare name is searched in the image's library path, where nothing of ours is mounted.
    if (path.posix.isAbsolute(entry) && isLibvgpuName(path.posix.basename(entry)))
      libraryPaths.add(path.posix.normalize(entry));
    else otherEntries.add(entry);
  }
  return { libraryPaths: [...libraryPaths], otherEntries: [...otherEntries] };
}

/** HAMi-core loads in a split container only when all three hold. */
export function limitsEnforced(host: HamiCoreHost): boolean {
  return host.library !== null && host.preload !== null && preloadPlan(host).libraryPaths.length > 0;
}

export async function detectHamiCore(hookPath: string): Promise<HamiCoreHost> {
  let names: string[];
  try {
    names = await readdir(hookPath);
  } catch {
    return { hookPath, library: null, preload: null };
  }
  const library = newestLibrary(names);
  return {
    hookPath,
    library: library === undefined ? null : path.join(hookPath, library),
    preload: names.includes(PRELOAD_FILE_NAME)
      ? await readPreload(path.join(hookPath, PRELOAD_FILE_NAME))
      : null,
  };
}

async function readPreload(file: string): Promise<HamiCoreHost['preload']> {
  try {
    return { file, entries: parsePreloadList(await readFile(file, 'utf8')) };
  } catch {
    return null;
  }
}

/**
 * Prefers a versioned file: installers add a new version beside the old one because replacing a
 * library that running containers have mapped crashes them.
 */
function newestLibrary(names: readonly string[]): string | undefined {
  const versioned = names
    .map((name) => ({ name, version: VERSIONED_LIBRARY.exec(name)?.[1] }))
    .filter((v): v is { name: string; version: string } => v.version !== undefined)
    .sort((a, b) => compareVersions(a.version, b.version));
  return versioned.at(-1)?.name ?? (names.includes('libvgpu.so') ? 'libvgpu.so' : undefined);
}

/** Numeric parts compared as numbers (2.10 > 2.9); a build suffix breaks ties. */
function compareVersions(a: string, b: string): number {
  const parts = (v: string) => v.replace(/^v/, '').split('-')[0]!.split('.').map(Number);
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.localeCompare(b);
}

/** Why a split container would not load HAMi-core, naming the files; null when it would. */
export function enforcementProblem(host: HamiCoreHost): string | null {
  if (limitsEnforced(host)) return null;
  const preloadFile = host.preload?.file ?? path.join(host.hookPath, PRELOAD_FILE_NAME);
  const names = host.preload?.entries.length ? host.preload.entries.join(' ') : 'nothing';
  const found = host.library
    ? `the library found is ${host.library}`
    : `no libvgpu.so was found in ${host.hookPath}`;
  if (host.preload === null) return `${preloadFile} does not exist (or cannot be read); ${found}`;
  if (host.library === null) return `${preloadFile} names ${names}, but ${found}`;
  return `${preloadFile} names ${names}, no absolute path to a libvgpu.so; ${found}`;
}

/** What to do on the node so that split containers load HAMi-core. */
export function installAdvice(hookPath: string): string {
  return (
    `install HAMi-core with HAMi's vgpu-init.sh, or copy libvgpu.so into ${hookPath} and write ` +
    `${path.join(hookPath, PRELOAD_FILE_NAME)} containing ${path.join(hookPath, 'libvgpu.so')}`
  );
}

/** One line for people: whether split limits would be enforced on this host, and why not. */
export function describeEnforcement(host: HamiCoreHost): string {
  const problem = enforcementProblem(host);
  if (problem !== null) return `limits NOT enforced: ${problem}`;
  return (
    `limits enforced: ${host.preload!.file} names ${preloadPlan(host).libraryPaths.join(', ')}, ` +
    `served by ${host.library}`
  );
}
