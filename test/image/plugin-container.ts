/**
 * The plugin container as the Helm chart defines it, for the image test: the environment, arguments,
 * security context and config the chart renders (with `kubeApi.enabled=false`: no API server here),
 * translated into podman flags. A security context field the translation does not know fails the test
 * rather than being dropped silently.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CHART_DIR, findObject, helm, type KubeObject, parseManifests } from '../chart/helm.js';

export interface ChartPlugin {
  args: string[];
  /** plain `value` entries only (downward API entries are the caller's to set) */
  env: Record<string, string>;
  securityContext: Record<string, unknown>;
  /** the ConfigMap's keys, mounted at CONFIG_FILE */
  config: Record<string, string>;
}

export async function chartPlugin(): Promise<ChartPlugin> {
  const result = await helm(4, [
    'template',
    'vgpu-agent',
    CHART_DIR,
    '--namespace',
    'kube-system',
    '--set',
    'kubeApi.enabled=false',
  ]);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  const objects = parseManifests(result.stdout);
  const spec = findObject(objects, 'DaemonSet').spec.template.spec;
  const plugin = spec.containers.find((c: KubeObject) => c.name === 'plugin');
  const env: Record<string, string> = {};
  for (const entry of plugin.env as { name: string; value?: string }[]) {
    if (entry.value !== undefined) env[entry.name] = entry.value;
  }
  return {
    args: plugin.args,
    env,
    securityContext: plugin.securityContext,
    config: findObject(objects, 'ConfigMap').data,
  };
}

/** podman flags enforcing a Kubernetes container security context (the fields the chart uses). */
export function podmanSecurityFlags(context: Record<string, unknown>): string[] {
  const flags: string[] = [];
  for (const [field, value] of Object.entries(context)) {
    if (field === 'readOnlyRootFilesystem' && value === true) {
      // Kubernetes mounts no tmpfs on a read-only root; podman would, unless told not to.
      flags.push('--read-only', '--read-only-tmpfs=false');
    } else if (field === 'allowPrivilegeEscalation' && value === false) {
      flags.push('--security-opt=no-new-privileges');
    } else if (field === 'capabilities') {
      const { drop = [], add = [] } = value as { drop?: string[]; add?: string[] };
      flags.push(...drop.map((c) => `--cap-drop=${c.toLowerCase()}`));
      flags.push(...add.map((c) => `--cap-add=${c.toLowerCase()}`));
    } else if (field === 'runAsUser' || field === 'runAsGroup' || field === 'runAsNonRoot') {
      // applied together below
    } else {
      throw new Error(`image test: securityContext.${field} has no podman equivalent here`);
    }
  }
  if (context.runAsUser !== undefined) {
    flags.push(`--user=${context.runAsUser}:${context.runAsGroup ?? context.runAsUser}`);
  }
  return flags;
}

/** Writes the ConfigMap's keys as kubelet presents them (one file per key) and returns the directory. */
export async function writeConfigVolume(dir: string, config: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [key, text] of Object.entries(config)) await writeFile(path.join(dir, key), text);
  return dir;
}
