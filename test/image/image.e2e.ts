/**
 * `npm run test:image` (not part of `npm test`; .ci/run calls it): builds the image from the Dockerfile
 * on a local stand-in for node:24-bookworm-slim, then runs it with a real container runtime (podman):
 * `vgpu-agent version` as the image's non-root user, `config check`, and `vgpu-agent plugin` with the
 * chart's environment and security context, against the mock NVML library and a device-plugin
 * directory mounted from the host, while the kubelet simulator runs outside the container and sees
 * the devices register. Prints the image size, build times and the plugin's resident memory.
 *
 * Needs root, buildah, podman, mmdebstrap and runc (`apt-get install -y --no-install-recommends
 * buildah podman mmdebstrap runc`, as .ci/run does), the npm registry and Debian's archive. Everything is
 * built in a private container storage that is removed at the end.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockNvmlLibraryPath, packageRoot } from '../../src/paths.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';
import { MockNode } from '../../src/sim/mock-node.js';
import { tempDir } from '../helpers/plugin-node.js';
import { buildAgentImage, imageSize } from './agent-image.js';
import { buildNodeBase } from './base-image.js';
import { ContainerTools } from './containers.js';
import { chartPlugin, podmanSecurityFlags, writeConfigVolume } from './plugin-container.js';

const ROOT = packageRoot();
const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  config: { node24Version: string };
};
const BASE_IMAGE = 'localhost/vgpu-test/node-base:24';
const IMAGE = `localhost/vgpu-test/vgpu-agent:${PACKAGE.version}`;
const NPM_VERSION = '11.19.1';
const MiB = 1024 * 1024;

const figures: [string, string][] = [];
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
let tools: ContainerTools | undefined;

function requireTools(): void {
  const missing = ['buildah', 'podman', 'mmdebstrap'].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(
      `the image test needs ${missing.join(', ')}: apt-get install -y --no-install-recommends ` +
        'buildah podman mmdebstrap runc (as .ci/run does)',
    );
  }
}

beforeAll(async () => {
  requireTools();
  tools = await ContainerTools.create();
  let started = performance.now();
  await buildNodeBase(tools, {
    cacheDir: path.join(ROOT, '.ci/cache'),
    root: ROOT,
    nodeVersion: PACKAGE.config.node24Version,
    npmVersion: NPM_VERSION,
    tag: BASE_IMAGE,
  });
  figures.push(['stand-in base image (rootfs cached or not)', seconds(started)]);
  for (const build of ['cold', 'warm (layers cached)']) {
    started = performance.now();
    await buildAgentImage(tools, { root: ROOT, tag: IMAGE, baseImage: BASE_IMAGE, version: PACKAGE.version });
    figures.push([`image build, ${build}`, seconds(started)]);
  }
  const [size, base] = await Promise.all([imageSize(tools, IMAGE), imageSize(tools, BASE_IMAGE)]);
  figures.push(['image size', `${(size / MiB).toFixed(1)} MiB (base ${(base / MiB).toFixed(1)} MiB)`]);
}, 1_200_000);

afterAll(async () => {
  if (figures.length > 0) {
    console.log(`vgpu-agent image test:\n${figures.map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
  }
  await tools?.remove();
}, 120_000);

function podman(args: string[]): Promise<string> {
  if (!tools) throw new Error('no container storage');
  return tools.podman(args);
}

describe('the vgpu-agent image', () => {
  it('prints its version on Node 24 as the non-root user 1000', async () => {
    expect(await podman(['run', '--rm', '--pull=never', '--network=host', IMAGE, 'version'])).toBe(
      `vgpu-agent ${PACKAGE.version} (node v${PACKAGE.config.node24Version})\n`,
    );
    const id = await podman(['run', '--rm', '--pull=never', '--network=host', '--entrypoint=id', IMAGE]);
    expect(id).toMatch(/^uid=1000\(node\) gid=1000\(node\)/);
  });

  it('carries the OCI labels, its entrypoint, and koffi prebuilts for linux-x64 and linux-arm64 only', async () => {
    const inspected = JSON.parse(await podman(['image', 'inspect', IMAGE]))[0];
    expect(inspected.Config.Entrypoint).toEqual(['vgpu-agent']);
    expect(inspected.Config.User).toBe('1000:1000');
    expect(inspected.Config.Labels).toMatchObject({
      'org.opencontainers.image.version': PACKAGE.version,
      'org.opencontainers.image.licenses': 'Apache-2.0',
      'org.opencontainers.image.title': 'vgpu-agent',
    });
    expect(inspected.Config.Labels).toHaveProperty(['org.opencontainers.image.source']);
    const listing = await podman([
      'run',
      '--rm',
      '--pull=never',
      '--network=host',
      '--entrypoint=sh',
      IMAGE,
      '-c',
      'ls node_modules/@koromix; ls node_modules/@koromix/*/; test ! -e node_modules/typescript && echo no-dev-deps',
    ]);
    const lines = listing.split('\n');
    expect(lines.slice(0, 2)).toEqual(['koffi-linux-arm64', 'koffi-linux-x64']);
    expect(lines).toContain('linux_x64');
    expect(lines).toContain('linux_arm64');
    expect(lines.filter((l) => l.startsWith('musl_'))).toEqual([]);
    expect(lines).toContain('no-dev-deps');
  });

  // Node keeps the cache per user id: the image's user, and root as the chart runs both containers.
  it.each([['1000'], ['0']])(
    'starts from the compile cache warmed when the image was built, as user %s',
    async (user) => {
      const debug = await podman([
        'run',
        '--rm',
        '--pull=never',
        '--network=host',
        '--read-only',
        `--user=${user}`,
        '--env',
        'NODE_DEBUG_NATIVE=COMPILE_CACHE',
        '--entrypoint=sh',
        IMAGE,
        '-c',
        'vgpu-agent plugin --help 2>&1 >/dev/null',
      ]);
      const accepted = debug.split('\n').filter((line) => line.includes('was accepted'));
      expect(accepted.length, debug.slice(0, 2000)).toBeGreaterThan(100);
      expect(debug).not.toMatch(/reject|cannot create/i);
    },
  );

  it('checks a config with `vgpu-agent config check`, no GPU and no cluster needed', async () => {
    const dir = await tempDir('vgpu-image-config-');
    try {
      await chmod(dir.dir, 0o755); // the image's user 1000 reads it
      await writeConfigVolume(dir.dir, {
        default:
          'version: v1\nsharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n        replicas: 4\n',
      });
      const report = await podman([
        'run',
        '--rm',
        '--pull=never',
        '--network=host',
        '-v',
        `${dir.dir}:/config:ro`,
        IMAGE,
        'config',
        'check',
        '/config',
      ]);
      expect(report).toContain('nvidia.com/gpu: 32 device(s)');
    } finally {
      await dir.remove();
    }
  });

  it("runs the plugin with the chart's environment and security context; the kubelet outside sees it register", async () => {
    await runPluginContainer();
  }, 180_000);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The chart's plugin container, run by podman on a simulated node with kubelet outside it. */
async function runPluginContainer(): Promise<void> {
  const node = await MockNode.create('dgx-a100');
  const pluginDir = path.join(node.dir, 'device-plugins');
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  const name = `vgpu-image-test-${process.pid}`;
  try {
    const chart = await chartPlugin();
    const configDir = await writeConfigVolume(path.join(node.dir, 'config'), chart.config);
    const port = await freePort();
    const env = {
      ...chart.env,
      NODE_NAME: 'image-test-node',
      METRICS_ADDRESS: `127.0.0.1:${port}`,
      // The simulated node instead of the NVIDIA runtime's injected library and the host's /sys, /proc.
      NVML_LIBRARY: '/opt/mock-nvml/libnvidia-ml.so.1',
      MOCK_NVML_STATE: '/mock-node/nvml-state.json',
      HOST_SYS: '/mock-node/sys',
      HOST_PROC: '/mock-node/proc',
    };
    await podman([
      'run',
      '--detach',
      '--pull=never',
      `--name=${name}`,
      '--network=host',
      ...podmanSecurityFlags(chart.securityContext),
      ...Object.entries(env).flatMap(([key, value]) => ['--env', `${key}=${value}`]),
      '-v',
      `${pluginDir}:/var/lib/kubelet/device-plugins`,
      '-v',
      `${configDir}:${chart.env.CONFIG_FILE}:ro`,
      '-v',
      `${node.dir}:/mock-node:ro`,
      '-v',
      `${mockNvmlLibraryPath()}:/opt/mock-nvml/libnvidia-ml.so.1:ro`,
      IMAGE,
      ...chart.args,
    ]);
    await checkRunningPlugin(kubelet, port, name);
    await stopPlugin(name, pluginDir);
  } catch (error) {
    const logs = await tools?.tryExec('podman', ['logs', name]);
    throw new Error(`${(error as Error).message}\n--- plugin container log:\n${logs?.stdout}${logs?.stderr}`);
  } finally {
    await tools?.tryExec('podman', ['rm', '--force', name]);
    await kubelet.stop();
    await node.remove();
  }
}

async function checkRunningPlugin(kubelet: KubeletSimulator, port: number, name: string): Promise<void> {
  const state = await kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 8, {
    timeoutMs: 60_000,
  });
  expect(state.get('nvidia.com/gpu')?.connected).toBe(true);
  const { deviceIds, response } = await kubelet.allocate('nvidia.com/gpu', 2);
  expect(response.envs?.NVIDIA_VISIBLE_DEVICES?.split(',')).toEqual(deviceIds);

  const get = (p: string) => fetch(`http://127.0.0.1:${port}${p}`);
  await expect.poll(async () => (await get('/readyz')).status, { timeout: 10_000 }).toBe(200);
  expect((await get('/healthz')).status).toBe(200);
  expect(await (await get('/metrics')).text()).toMatch(
    /^vgpu_agent_registered\{resource="nvidia.com\/gpu"\} 1$/m,
  );

  const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', name])).trim();
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  figures.push(['plugin resident memory, 8 GPUs registered', `${(rssKiB / 1024).toFixed(1)} MiB`]);
}

/** SIGTERM, as kubelet stops a pod: a clean exit that removes the plugin's socket. */
async function stopPlugin(name: string, pluginDir: string): Promise<void> {
  await podman(['stop', '--time=10', name]);
  expect((await podman(['inspect', '--format', '{{.State.ExitCode}}', name])).trim()).toBe('0');
  expect(await readdir(pluginDir)).toEqual(['kubelet.sock']);
}
