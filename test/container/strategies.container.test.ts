/**
 * Every deviceListStrategy and passDeviceSpecs in a real container: the plugin's Allocate answer
 * (through the kubelet simulator) is given to podman as is, and a probe inside reports what the
 * NVIDIA container toolkit or a CDI-aware runtime would find. Device nodes are stand-ins (char 1:3)
 * under a temp nvidiaDevRoot. The plugin does not write CDI specs (nvidia-ctk does): the CDI checks
 * write one, as `nvidia-ctk cdi generate` names devices, under a kind of their own in /var/run/cdi.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, usePluginNodes } from '../helpers/plugin-node.js';
import { openPodmanOrReason, type Podman } from './podman.js';

const run = promisify(execFile);
const podman = await openPodmanOrReason();
const GPU = 'nvidia.com/gpu';
const T4 = 'GPU-7775dc64-e721-10da-1c9e-c2de3eb9207d';
const DEVICE_NODES = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia0'];
/** podman reads CDI specs from /etc/cdi and /var/run/cdi only (4.x has no setting for another directory) */
const CDI_DIR = '/var/run/cdi';
const cdiKind = `vgpu-agent-test-${process.pid}.example/gpu`;
const cdiSpec = path.join(CDI_DIR, `vgpu-agent-test-${process.pid}.yaml`);

let devRoot: string;
let removeDevRoot: () => Promise<void>;
let createdCdiDir = false;

beforeAll(async () => {
  if (typeof podman === 'string') return;
  ({ dir: devRoot, remove: removeDevRoot } = await tempDir('vgpu-devroot-'));
  await mkdir(path.join(devRoot, 'dev'));
  for (const node of DEVICE_NODES) await run('mknod', ['-m', '666', path.join(devRoot, node), 'c', '1', '3']);
  createdCdiDir = !(await stat(CDI_DIR).catch(() => null));
  await mkdir(CDI_DIR, { recursive: true });
  await writeFile(cdiSpec, cdiSpecText());
});

afterAll(async () => {
  if (typeof podman === 'string') return;
  await rm(cdiSpec, { force: true });
  if (createdCdiDir) await rmdir(CDI_DIR).catch(() => undefined);
  await removeDevRoot();
  await podman.close();
});

/** One device per GPU named by UUID, injecting the GPU's node and an env var saying which. */
function cdiSpecText(): string {
  return [
    'cdiVersion: "0.5.0"',
    `kind: ${cdiKind}`,
    'devices:',
    `  - name: ${T4}`,
    '    containerEdits:',
    '      deviceNodes:',
    `        - {path: /dev/nvidia0, hostPath: ${path.join(devRoot, 'dev/nvidia0')}}`,
    `      env: ["CDI_INJECTED=${T4}"]`,
    '',
  ].join('\n');
}

const startNode = usePluginNodes();

async function allocateWith(plugin: string) {
  const running = await startNode('single-t4', {
    config: `flags:\n  nvidiaDevRoot: ${devRoot}\n  plugin: {${plugin}, cdiKind: ${cdiKind}}\n`,
  });
  await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
  return (await running.kubelet.allocate(GPU, 1)).response;
}

const PROBE = `probe env NVIDIA_VISIBLE_DEVICES CDI_INJECTED; probe stat ${DEVICE_NODES.join(' ')} /dev/nvidia-uvm-tools`;

describe.skipIf(typeof podman === 'string')('Allocate strategies in a container (podman)', () => {
  const harness = podman as Podman;

  it('envvar: NVIDIA_VISIBLE_DEVICES names the GPU, no device nodes', async () => {
    const result = await harness.run(await allocateWith('deviceListStrategy: envvar'), PROBE);
    expect(result.lines).toEqual([
      `NVIDIA_VISIBLE_DEVICES=${T4}`,
      'CDI_INJECTED unset',
      '/dev/nvidiactl missing',
      '/dev/nvidia-uvm missing',
      '/dev/nvidia0 missing',
      '/dev/nvidia-uvm-tools missing',
    ]);
  });

  it('volume-mounts: the device list is under /var/run/nvidia-container-devices, one entry per device', async () => {
    const dir = '/var/run/nvidia-container-devices';
    const result = await harness.run(
      await allocateWith('deviceListStrategy: volume-mounts'),
      `probe env NVIDIA_VISIBLE_DEVICES; probe ls ${dir}; probe stat ${dir}/${T4}`,
    );
    // The toolkit reads the entry names as device IDs; each entry is the host's /dev/null.
    expect(result.lines).toEqual([`NVIDIA_VISIBLE_DEVICES=${dir}`, `${dir}: ${T4}`, `${dir}/${T4} char 1:3`]);
  });

  it('passDeviceSpecs: the control nodes present on the host and the GPU node exist in the container', async () => {
    const result = await harness.run(
      await allocateWith('deviceListStrategy: envvar, passDeviceSpecs: true'),
      PROBE,
    );
    expect(result.lines).toEqual([
      `NVIDIA_VISIBLE_DEVICES=${T4}`,
      'CDI_INJECTED unset',
      '/dev/nvidiactl char 1:3',
      '/dev/nvidia-uvm char 1:3',
      '/dev/nvidia0 char 1:3',
      '/dev/nvidia-uvm-tools missing',
    ]);
  });

  it('cdi-cri: the runtime injects the CDI device the answer names', async () => {
    const result = await harness.run(await allocateWith('deviceListStrategy: cdi-cri'), PROBE);
    expect(result.stderr).toBe('');
    expect(result.lines).toEqual([
      'NVIDIA_VISIBLE_DEVICES unset',
      `CDI_INJECTED=${T4}`,
      '/dev/nvidiactl missing',
      '/dev/nvidia-uvm missing',
      '/dev/nvidia0 char 1:3',
      '/dev/nvidia-uvm-tools missing',
    ]);
  });

  it('cdi-annotations: the annotation names the same CDI device', async () => {
    const response = await allocateWith('deviceListStrategy: cdi-annotations');
    expect(Object.keys(response.annotations ?? {})).toEqual([`cdi.k8s.io/vgpu-agent_${T4}`]);
    const result = await harness.run(response, PROBE);
    expect(result.lines.slice(0, 2)).toEqual(['NVIDIA_VISIBLE_DEVICES unset', `CDI_INJECTED=${T4}`]);
    expect(result.lines).toContain('/dev/nvidia0 char 1:3');
  });
});
