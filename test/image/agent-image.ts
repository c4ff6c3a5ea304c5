/**
 * Builds the project's Dockerfile with buildah on the stand-in base image, as `docker build` would on
 * the official one: `--build-arg BASE_IMAGE=...`, never pulling. RUN steps reach the npm registry with
 * the machine's npm settings: when this machine's npm uses its own CA bundle (or registry), the build
 * gets the same for its RUN steps only, through bind mounts that leave nothing in the image.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type ContainerTools, run } from './containers.js';

export interface AgentImageOptions {
  root: string;
  tag: string;
  baseImage: string;
  version: string;
}

async function npmSetting(name: string): Promise<string | undefined> {
  const result = await run('npm', ['config', 'get', name]);
  const value = result.stdout.trim();
  return result.code === 0 && value !== '' && value !== 'null' && value !== 'undefined' ? value : undefined;
}

/** `-v` flags giving the build's npm the machine's CA bundle and registry, when it has its own. */
async function npmMounts(dir: string): Promise<string[]> {
  const [cafile, registry] = await Promise.all([npmSetting('cafile'), npmSetting('registry')]);
  const lines = [
    ...(cafile ? ['cafile=/etc/ssl/certs/ca-certificates.crt'] : []),
    ...(registry && registry !== 'https://registry.npmjs.org/' ? [`registry=${registry}`] : []),
  ];
  if (lines.length === 0) return [];
  const npmrc = path.join(dir, 'build-npmrc');
  await writeFile(npmrc, `${lines.join('\n')}\n`);
  return [
    ...(cafile ? ['-v', `${cafile}:/etc/ssl/certs/ca-certificates.crt:ro`] : []),
    '-v',
    `${npmrc}:/usr/local/etc/npmrc:ro`,
  ];
}

export async function buildAgentImage(tools: ContainerTools, options: AgentImageOptions): Promise<void> {
  const revision = (await run('git', ['rev-parse', 'HEAD'], { cwd: options.root })).stdout.trim();
  await tools.buildah([
    'bud',
    '--pull=never',
    '--layers',
    '--jobs=2',
    '--force-rm',
    // RUN steps on the host network: no bridge or iptables chains are left behind.
    '--network=host',
    '--build-arg',
    `BASE_IMAGE=${options.baseImage}`,
    '--build-arg',
    `VERSION=${options.version}`,
    '--build-arg',
    `REVISION=${revision}`,
    ...(await npmMounts(tools.dir)),
    '--tag',
    options.tag,
    '--file',
    path.join(options.root, 'Dockerfile'),
    options.root,
  ]);
}

/** Size of an image in bytes, as the container storage accounts it (uncompressed layers). */
export async function imageSize(tools: ContainerTools, tag: string): Promise<number> {
  return Number((await tools.podman(['image', 'inspect', '--format', '{{.Size}}', tag])).trim());
}
