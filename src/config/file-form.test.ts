import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { configInFileForm } from './file-form.js';
import { parseConfig } from './load.js';

function parse(text: string) {
  const result = parseConfig(text, 'config.yaml');
  if (!result.ok) throw new Error(result.error.map((e) => e.message).join('\n'));
  return result.value.config;
}

describe('configInFileForm', () => {
  it.each([
    ['defaults', 'version: v1'],
    [
      'time-slicing with every devices form and a rename',
      `
flags: {migStrategy: mixed}
sharing:
  timeSlicing:
    renameByDefault: true
    resources:
      - {name: nvidia.com/gpu, replicas: 4, devices: all}
      - {name: nvidia.com/mig-1g.5gb, replicas: 2, devices: [0, "1:2", GPU-8ca5f1b4-3c1f-9c2e-8a9d-2b3f4c5d6e7f]}
      - {name: nvidia.com/mig-2g.10gb, rename: nvidia.com/mig-medium, replicas: 2, devices: 3}
`,
    ],
    [
      'split',
      'sharing: {split: {hookPath: /opt/vgpu, resources: [{name: nvidia.com/gpu, count: 4, memoryScaling: 1.5}]}}',
    ],
  ])('%s: written back and parsed again gives the same effective config', (_name, text) => {
    const effective = parse(text);
    expect(parse(stringify(configInFileForm(effective)))).toEqual(effective);
  });

  it('reads like the file: devices as written, no null renames', () => {
    const form = configInFileForm(
      parse(
        'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: ["0:1", 2]}]}}',
      ),
    ) as { sharing: { timeSlicing: { resources: Record<string, unknown>[] } } };
    expect(form.sharing.timeSlicing.resources[0]).toEqual({
      name: 'nvidia.com/gpu',
      replicas: 2,
      devices: ['0:1', 2],
    });
  });
});
