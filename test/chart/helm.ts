/**
 * The chart under test through the real Helm binaries (3.18 and 4.1, fetched once by scripts/helm.mjs):
 * lint, render, parse the rendered documents and validate each object against the Kubernetes schema
 * (kubernetes-models: types, formats, quantities and required fields; unknown fields are not caught,
 * so the tests assert the fields that matter).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { RuntimeClass } from 'kubernetes-models/node.k8s.io/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Pod, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR } from '../../scripts/chart.mjs';
import { helmBinary, helmEnv } from '../../scripts/helm.mjs';

export { CHART_DIR };
export type HelmMajor = 3 | 4;
export const HELM_MAJORS: readonly HelmMajor[] = [3, 4];

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs Helm of that major; never throws for a non-zero exit. */
export async function helm(major: HelmMajor, args: readonly string[]): Promise<HelmResult> {
  const binary = await helmBinary(major);
  return new Promise((resolve, reject) => {
    execFile(binary, args, { env: helmEnv(), maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

/** `helm template` of the chart as release `vgpu-agent` in kube-system, with these values files. */
export function template(major: HelmMajor, valuesFiles: readonly string[] = []): Promise<HelmResult> {
  return helm(major, [
    'template',
    'vgpu-agent',
    CHART_DIR,
    '--namespace',
    'kube-system',
    ...valuesFiles.flatMap((file) => ['--values', file]),
  ]);
}

export function lint(major: HelmMajor, valuesFiles: readonly string[] = []): Promise<HelmResult> {
  return helm(major, ['lint', '--strict', CHART_DIR, ...valuesFiles.flatMap((file) => ['--values', file])]);
}

/** A rendered Kubernetes object, loosely typed: tests read the fields they assert. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // biome-ignore lint/suspicious/noExplicitAny: rendered YAML; each test asserts the shape it reads
  [field: string]: any;
}

export function parseManifests(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
      return doc.toJS() as KubeObject | null;
    })
    .filter((object): object is KubeObject => object !== null);
}

type Model = new (data: never) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Pod': Pod,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'node.k8s.io/v1/RuntimeClass': RuntimeClass,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

/** Validates one object against its Kubernetes schema; throws naming the object and the problems. */
export function validateObject(object: KubeObject): void {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!Model) throw new Error(`${object.apiVersion} ${object.kind}: no schema known to the chart tests`);
  try {
    new Model(object as never).validate();
  } catch (error) {
    throw new Error(`${object.kind} ${object.metadata.name}: ${(error as Error).message}`);
  }
}

export function ciValuesFile(name: string): string {
  return path.join(CHART_DIR, 'ci', name);
}

/** The one object of that kind (and name, when given); throws when absent. */
export function findObject(objects: readonly KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} in the rendered manifests`);
  return found;
}
