/** `flags`: the options NVIDIA also takes on its command line, plus `flags.plugin.cdiKind`. */
import { z } from 'zod';
import { describeValue, oneOf } from './describe.js';
import {
  goDurationError,
  goTypeError,
  invalidDeviceListStrategy,
  NVIDIA_CHOICES,
  type NvidiaChoice,
} from './nvidia-wording.js';
import { absolutePath, doc } from './schema-fields.js';

/** NVIDIA's plugin writes a CDI spec at start; vgpu-agent only names CDI devices. */
const CDI_SPEC_NOT_GENERATED =
  'no effect: vgpu-agent does not generate CDI specs (create one with `nvidia-ctk cdi generate` or the GPU operator)';

export const MIG_STRATEGIES = ['none', 'single', 'mixed'] as const;
export const DEVICE_LIST_STRATEGIES = ['envvar', 'volume-mounts', 'cdi-annotations', 'cdi-cri'] as const;
export const DEVICE_ID_STRATEGIES = ['uuid', 'index'] as const;
export const ALLOCATION_POLICIES = ['distributed', 'packed'] as const;
export const DEVICE_DISCOVERY_STRATEGIES = ['auto', 'nvml'] as const;

export type DeviceListStrategy = (typeof DEVICE_LIST_STRATEGIES)[number];

const GFD_ONLY = 'used by gpu-feature-discovery only; no effect in vgpu-agent';

/**
 * One of fixed `values`. A value NVIDIA rejects too is refused in NVIDIA's words, then ours
 * (`unknown MIG strategy: foo (expected none, single or mixed)`); one NVIDIA accepts but vgpu-agent
 * does not gets `ownRejection`.
 */
function choiceOf<const T extends readonly [string, ...string[]]>(
  values: T,
  nvidia: NvidiaChoice,
  ownRejection: (value: string) => string | undefined = () => undefined,
) {
  return z.enum(values, {
    error: (issue) => {
      const { input, path = [] } = issue;
      const expected = `expected ${oneOf(values)}`;
      if (typeof input === 'object' && input !== null) {
        const go = path.length > 0 ? goTypeError(path, input) : undefined;
        return go && `${go} (${expected}, got ${describeValue(input)})`;
      }
      // sigs.k8s.io/yaml hands NVIDIA a YAML number or boolean here as its text.
      const text = String(input);
      return nvidia.accepted.includes(text) ? ownRejection(text) : `${nvidia.rejection(text)} (${expected})`;
    },
  });
}

const deviceListStrategySchema = z
  .unknown()
  .transform((value, ctx): DeviceListStrategy[] => {
    const single = typeof value === 'string';
    const items: unknown = single ? [value] : value;
    if (!Array.isArray(items)) {
      ctx.issues.push({
        code: 'custom',
        message: `${invalidDeviceListStrategy(value)} (expected a strategy or a list of strategies)`,
        input: value,
      });
      return z.NEVER;
    }
    if (items.length === 0) {
      ctx.issues.push({ code: 'custom', message: 'must list at least one strategy', input: value });
      return z.NEVER;
    }
    items.forEach((item, index) => {
      if (!(DEVICE_LIST_STRATEGIES as readonly unknown[]).includes(item)) {
        ctx.issues.push({
          code: 'custom',
          message: `invalid strategy: ${String(item)} (expected ${oneOf(DEVICE_LIST_STRATEGIES)})`,
          input: item,
          path: single ? [] : [index],
        });
      }
    });
    // NVIDIA dedupes the list (internal/plugin/server_test.go: foo,bar,foo → foo,bar); order is kept.
    return [...new Set(items as DeviceListStrategy[])];
  })
  .prefault('envvar')
  .meta(
    doc({
      description:
        'How Allocate hands the devices to the container runtime. Several may be combined; duplicates ' +
        'are dropped. `envvar` sets NVIDIA_VISIBLE_DEVICES; `volume-mounts` mounts /dev/null entries under ' +
        '/var/run/nvidia-container-devices; `cdi-annotations` and `cdi-cri` name CDI devices.',
      type: 'string or list of strings',
      choices: DEVICE_LIST_STRATEGIES,
      example: '[envvar, cdi-cri]',
    }),
  );

const DURATION_FORMS = 'expected a duration such as "60s", a number of nanoseconds or "infinite"';

/** NVIDIA's Duration: a number of nanoseconds, Go's time.ParseDuration syntax, or "infinite". */
const sleepIntervalSchema = z.unknown().superRefine((value, ctx) => {
  const problem = durationProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', input: value, message: problem });
});

function durationProblem(value: unknown): string | undefined {
  if ((typeof value === 'number' && Number.isFinite(value)) || value === 'infinite') return undefined;
  if (typeof value !== 'string') return `invalid duration (${DURATION_FORMS}, got ${describeValue(value)})`;
  const go = goDurationError(value);
  return go && `${go} (${DURATION_FORMS})`;
}

const gfdSchema = z.strictObject({
  oneshot: z
    .boolean()
    .optional()
    .meta(doc({ description: 'GFD: label once and exit.' })),
  noTimestamp: z
    .boolean()
    .optional()
    .meta(doc({ description: 'GFD: omit the timestamp label.' })),
  sleepInterval: sleepIntervalSchema.optional().meta(
    doc({
      description: 'GFD: time between two labelling passes.',
      type: 'duration',
      allowed: 'nanoseconds, a Go duration (`60s`) or `infinite`',
    }),
  ),
  outputFile: z
    .string()
    .optional()
    .meta(doc({ description: 'GFD: where the labels are written.' })),
  machineTypeFile: z
    .string()
    .optional()
    .meta(doc({ description: 'GFD: file holding the machine type.' })),
});

const cdiKindSchema = z
  .string()
  .refine(
    (kind) => /^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?\/[A-Za-z]([A-Za-z0-9_-]*[A-Za-z0-9])?$/.test(kind),
    {
      error: (issue) =>
        `expected a CDI kind "<vendor>/<class>", such as nvidia.com/gpu (got ${describeValue(issue.input)})`,
    },
  );

const pluginSchema = z.strictObject({
  passDeviceSpecs: z
    .boolean()
    .default(false)
    .meta(
      doc({
        description:
          'Also return the device nodes (/dev/nvidiaN, nvidiactl, nvidia-uvm, …) in Allocate, for runtimes ' +
          'without the NVIDIA hook (CPU manager static policy).',
      }),
    ),
  deviceListStrategy: deviceListStrategySchema,
  deviceIDStrategy: choiceOf(DEVICE_ID_STRATEGIES, NVIDIA_CHOICES.deviceIDStrategy)
    .default('uuid')
    .meta(
      doc({
        description:
          'How devices are named to the runtime: GPU/MIG UUIDs or indices (`0`, `0:1`). Kubelet always ' +
          'sees the device IDs of the plugin.',
      }),
    ),
  cdiAnnotationPrefix: z
    .string()
    .min(1)
    .default('cdi.k8s.io/')
    .meta(
      doc({ description: 'Prefix of the CDI annotation keys written by the `cdi-annotations` strategy.' }),
    ),
  cdiKind: cdiKindSchema.default('nvidia.com/gpu').meta(
    doc({
      description:
        'CDI kind of the device names the CDI strategies return: `<cdiKind>=<device id>`, e.g. ' +
        '`nvidia.com/gpu=GPU-…`, the names `nvidia-ctk cdi generate` writes. vgpu-agent only.',
    }),
  ),
  nvidiaCTKPath: absolutePath()
    .optional()
    .meta(
      doc({
        description: 'NVIDIA: path of `nvidia-ctk`, the hook in the CDI specs NVIDIA generates.',
        ignored: CDI_SPEC_NOT_GENERATED,
      }),
    ),
  containerDriverRoot: absolutePath()
    .optional()
    .meta(
      doc({
        description:
          'NVIDIA: where the driver root is mounted in the plugin container, for CDI spec generation.',
        ignored: CDI_SPEC_NOT_GENERATED,
      }),
    ),
  sharedDevicesAllocationPolicy: choiceOf(ALLOCATION_POLICIES, NVIDIA_CHOICES.sharedDevicesAllocationPolicy)
    .default('distributed')
    .meta(
      doc({
        description:
          'Preferred allocation for shared devices (replicas, slices, MIG): `distributed` picks the least ' +
          'used GPUs first, `packed` fills one GPU before the next.',
      }),
    ),
});

export const flagsSchema = z.strictObject({
  migStrategy: choiceOf(MIG_STRATEGIES, NVIDIA_CHOICES.migStrategy)
    .default('none')
    .meta(
      doc({
        description:
          'How MIG devices are advertised: `none` (MIG GPUs as whole `nvidia.com/gpu`), `single` (MIG devices ' +
          'as `nvidia.com/gpu`, all of one profile), `mixed` (`nvidia.com/mig-<profile>` per profile).',
      }),
    ),
  failOnInitError: z
    .boolean()
    .default(true)
    .meta(
      doc({
        description:
          'Exit when NVML cannot be loaded or initialised. `false` logs the error and idles, for DaemonSets ' +
          'that also land on nodes without GPUs; an idle agent still serves `/healthz`, `/readyz` (200, ' +
          '`idle: …`) and `/metrics` (`vgpu_agent_idle`).',
      }),
    ),
  nvidiaDriverRoot: absolutePath()
    .default('/')
    .meta(
      doc({
        description:
          'Root of the NVIDIA driver installation on the host (`/run/nvidia/driver` with the GPU operator).',
      }),
    ),
  nvidiaDevRoot: z
    .string()
    .refine((path) => path === '' || path.startsWith('/'), {
      error: (issue) => `must be an absolute path (got ${describeValue(issue.input)})`,
    })
    .optional()
    .meta(
      doc({
        description:
          'Root under which the `/dev/nvidia*` nodes are found on the host; prefixes the host paths of device ' +
          'specs. Empty or absent means the driver root.',
        defaultText: 'same as `nvidiaDriverRoot`',
      }),
    ),
  mpsRoot: z
    .string()
    .optional()
    .meta(
      doc({
        description: 'NVIDIA: MPS pipe and shm directory.',
        ignored: 'no effect: MPS is not supported by vgpu-agent',
      }),
    ),
  gdrcopyEnabled: z
    .boolean()
    .default(false)
    .meta(
      doc({
        description:
          'Add `NVIDIA_GDRCOPY=enabled` to the container environment (the runtime then mounts GDRCopy).',
      }),
    ),
  gdsEnabled: z
    .boolean()
    .default(false)
    .meta(doc({ description: 'Add `NVIDIA_GDS=enabled` to the container environment (GPUDirect Storage).' })),
  mofedEnabled: z
    .boolean()
    .default(false)
    .meta(doc({ description: 'Add `NVIDIA_MOFED=enabled` to the container environment (Mellanox OFED).' })),
  useNodeFeatureAPI: z
    .boolean()
    .optional()
    .meta(doc({ description: 'GFD: publish labels as a NodeFeature object.', ignored: GFD_ONLY })),
  deviceDiscoveryStrategy: choiceOf(
    DEVICE_DISCOVERY_STRATEGIES,
    NVIDIA_CHOICES.deviceDiscoveryStrategy,
    (value) => `${value} is not supported by vgpu-agent (expected ${oneOf(DEVICE_DISCOVERY_STRATEGIES)})`,
  )
    .default('auto')
    .meta(
      doc({
        description: 'How GPUs are discovered. Both values mean NVML; `tegra` (NVIDIA Jetson) is rejected.',
      }),
    ),
  plugin: pluginSchema.prefault({}).meta(doc({ description: 'Options of the device plugin.' })),
  gfd: gfdSchema.optional().meta(doc({ description: 'gpu-feature-discovery options.', ignored: GFD_ONLY })),
});
