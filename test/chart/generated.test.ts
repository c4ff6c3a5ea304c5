/**
 * What is generated from the chart stays in step with it: deploy/ (the chart's defaults rendered for
 * kubectl apply, by Helm 3 and Helm 4 alike), the README's parameter tables (from the values.yaml
 * comments), and the version the chart, the image and package.json announce.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEPLOY_FILE, renderDeploy, renderReadme } from '../../scripts/chart.mjs';
import { helmBinary } from '../../scripts/helm.mjs';
import { packageRoot } from '../../src/paths.js';
import { CHART_DIR, HELM_MAJORS, parseManifests, validateObject } from './helm.js';

const read = (file: string) => readFileSync(file, 'utf8');

beforeAll(async () => {
  await Promise.all(HELM_MAJORS.map((major) => helmBinary(major)));
}, 300_000);

describe('generated from the chart', () => {
  it.each(HELM_MAJORS)(
    'deploy/vgpu-agent.yaml is what Helm %i renders from the defaults (npm run chart:deploy)',
    async (major) => {
      expect(read(DEPLOY_FILE)).toBe(await renderDeploy(major));
    },
  );

  it('deploy/vgpu-agent.yaml holds valid objects for kube-system, without the helm test pod', () => {
    const objects = parseManifests(read(DEPLOY_FILE));
    for (const object of objects) validateObject(object);
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'DaemonSet',
      'Service',
      'ServiceAccount',
    ]);
  });

  it('the chart README has the parameter tables generated from values.yaml (npm run chart:docs)', async () => {
    expect(read(path.join(CHART_DIR, 'README.md'))).toBe(await renderReadme());
  });

  it("the chart's appVersion and the image's version label are package.json's version", () => {
    const { version } = JSON.parse(read(path.join(packageRoot(), 'package.json'))) as { version: string };
    expect(parse(read(path.join(CHART_DIR, 'Chart.yaml'))).appVersion).toBe(version);
    expect(read(path.join(packageRoot(), 'Dockerfile'))).toMatch(new RegExp(`^ARG VERSION=${version}$`, 'm'));
  });
});
