/** `sharing.hami` and HAMi's own device-config.yaml read as a config. */
import { describe, expect, it } from 'vitest';
import { formatIssue } from './errors.js';
import { configInFileForm } from './file-form.js';
import { parseConfig } from './load.js';

const errorsOf = (text: string) => {
  const parsed = parseConfig(text, 'c.yaml');
  if (parsed.ok) throw new Error('expected the config to be rejected');
  return parsed.error.map(formatIssue);
};

const configOf = (text: string) => {
  const parsed = parseConfig(text, 'c.yaml');
  if (!parsed.ok) throw new Error(parsed.error.map(formatIssue).join('\n'));
  return parsed.value;
};

/** What HAMi's chart (2.10) renders into `device-config.yaml` with its default values, abridged. */
const HAMI_CHART_DEVICE_CONFIG = `
nvidia:
  resourceCountName: nvidia.com/gpu
  resourceMemoryName: nvidia.com/gpumem
  resourceMemoryPercentageName: nvidia.com/gpumem-percentage
  resourceCoreName: nvidia.com/gpucores
  resourcePriorityName: nvidia.com/priority
  overwriteEnv: false
  defaultMemory: 0
  defaultCores: 0
  defaultGPUNum: 1
  preConfiguredDeviceMemory: 0
  memoryFactor: 1
  deviceSplitCount: 10
  deviceMemoryScaling: 1
  deviceCoreScaling: 1
  enableNumaTopology: false
  gpuCorePolicy: default
  libCudaLogLevel: 1
  runtimeClassName: ""
  migProfileAllowlist:
  - models: [ "A30" ]
    profiles: [ "1g.6gb", "2g.12gb", "4g.24gb" ]
cambricon:
  resourceCountName: cambricon.com/vmlu
`;

describe('sharing.hami', () => {
  it("defaults are HAMi's chart defaults", () => {
    const { config } = configOf('sharing: {hami: {}}');
    expect(config.sharing.hami).toEqual({
      resourceCountName: 'nvidia.com/gpu',
      resourceMemoryName: 'nvidia.com/gpumem',
      resourceMemoryPercentageName: 'nvidia.com/gpumem-percentage',
      resourceCoreName: 'nvidia.com/gpucores',
      resourcePriorityName: 'nvidia.com/priority',
      deviceSplitCount: 10,
      deviceMemoryScaling: 1,
      deviceCoreScaling: 1,
      preConfiguredDeviceMemory: 0,
      disableCoreLimit: false,
      libCudaLogLevel: null,
      hookPath: '/usr/local/vgpu',
      topologyScore: false,
      nodeLockTimeoutSeconds: 300,
    });
    expect(configOf('version: v1').config.sharing.hami).toBeNull();
  });

  it('rejects bad values, each naming the key', () => {
    expect(
      errorsOf(`
sharing:
  hami:
    deviceSplitCount: 0
    deviceMemoryScaling: -1
    libCudaLogLevel: 2
    hookPath: relative
    resourceCountName: Bad_Name
    splitCount: 3
`),
    ).toEqual([
      'c.yaml: sharing.hami.deviceSplitCount: must be >= 1 (got 0)',
      'c.yaml: sharing.hami.deviceMemoryScaling: must be > 0 (got -1)',
      'c.yaml: sharing.hami.libCudaLogLevel: must be one of 0, 1, 3, 4 (got 2)',
      'c.yaml: sharing.hami.hookPath: must be an absolute path (got "relative")',
      expect.stringContaining(
        "c.yaml: sharing.hami.resourceCountName: incorrect format for resource name 'nvidia.com/Bad_Name'",
      ),
      expect.stringMatching(
        /^c\.yaml: sharing\.hami\.splitCount: unknown key \(expected one of: resourceCountName/,
      ),
    ]);
  });

  it('cannot be combined with timeSlicing or split', () => {
    expect(
      errorsOf(`
sharing:
  hami: {}
  timeSlicing: {resources: [{name: gpu, replicas: 2}]}
  split: {resources: [{name: gpu-split}]}
`),
    ).toEqual([
      expect.stringMatching(/^c\.yaml: sharing\.timeSlicing: cannot be combined with sharing\.hami/),
      expect.stringMatching(/^c\.yaml: sharing\.split: cannot be combined with sharing\.hami/),
    ]);
  });

  it('round-trips through the file form', () => {
    const { config } = configOf('sharing: {hami: {deviceSplitCount: 4, libCudaLogLevel: 3}}');
    const again = configOf(JSON.stringify(configInFileForm(config)));
    expect(again.config).toEqual(config);
  });
});

describe("HAMi's device-config.yaml", () => {
  it("the chart's default file maps to sharing.hami; scheduler and other vendors' keys are warned about", () => {
    const { config, warnings } = configOf(HAMI_CHART_DEVICE_CONFIG);
    expect(config.sharing.hami).toMatchObject({
      resourceCountName: 'nvidia.com/gpu',
      deviceSplitCount: 10,
      libCudaLogLevel: '1',
    });
    expect(warnings).toEqual(
      expect.arrayContaining([
        "c.yaml: nvidia.overwriteEnv: read by HAMi's scheduler and webhook, not by the node: ignored here",
        expect.stringMatching(/^c\.yaml: nvidia\.migProfileAllowlist: for HAMi's dynamic MIG mode/),
        expect.stringMatching(/^c\.yaml: nvidia\.enableNumaTopology: vgpu-agent always gives kubelet/),
        expect.stringMatching(/^c\.yaml: cambricon: not an NVIDIA section/),
      ]),
    );
    expect(warnings).toHaveLength(10);
  });

  it("rejects unknown keys by name and bad values at their place in HAMi's file", () => {
    expect(
      errorsOf(`
nvidia:
  deviceSplitCont: 4
  deviceMemoryScaling: 0
`),
    ).toEqual([
      expect.stringMatching(
        /^c\.yaml: nvidia\.deviceSplitCont: unknown HAMi nvidia setting.*did you mean deviceSplitCount/,
      ),
      'c.yaml: nvidia.deviceMemoryScaling: must be > 0 (got 0)',
    ]);
    expect(errorsOf('nvidia: 3')).toEqual(['c.yaml: nvidia: must be a mapping of HAMi nvidia settings']);
  });
});
