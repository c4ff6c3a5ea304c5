/**
 * The configuration file: one zod schema for validation, TypeScript types and the reference docs
 * (docs/configuration.md is generated from the `.meta()` of every field).
 *
 * The format is a superset of NVIDIA k8s-device-plugin's `version: v1` file, so an NVIDIA ConfigMap loads
 * unchanged. Objects are strict (an unknown key is an error, not silently ignored as in NVIDIA's Go
 * loader). Keys that only gpu-feature-discovery reads are accepted with a warning, never silently.
 * `flags` and `sharing` live in flags-schema.ts and sharing-schema.ts; this module assembles the document
 * and derives the effective configuration.
 */
import { z } from 'zod';
import { flagsSchema } from './flags-schema.js';
import { doc, RESOURCE_NAME_TYPE, resourceName, whenMissing } from './schema-fields.js';
import {
  DEFAULT_HOOK_PATH,
  type SplitResource,
  sharingSchema,
  type TimeSlicedResource,
} from './sharing-schema.js';

export {
  ALLOCATION_POLICIES,
  DEVICE_DISCOVERY_STRATEGIES,
  DEVICE_ID_STRATEGIES,
  DEVICE_LIST_STRATEGIES,
  type DeviceListStrategy,
  MIG_STRATEGIES,
} from './flags-schema.js';
export type { HamiSettings } from './hami-schema.js';
export { DEFAULT_HOOK_PATH, type SplitResource, type TimeSlicedResource } from './sharing-schema.js';

const CONFIG_VERSION = 'v1';
/** NVIDIA's "application error" XIDs: the application failed, not the GPU (internal/rm/health.go). */
export const DEFAULT_DISABLED_XIDS: readonly number[] = [13, 31, 43, 45, 68, 109];

const patternResourceSchema = z.strictObject({
  pattern: z
    .string(whenMissing("resources must have a 'pattern' field set"))
    .meta(doc({ description: 'Wildcard (`*`) matched against the GPU or MIG profile name.' })),
  name: resourceName("resources must have a 'name' field set").meta(
    doc({ description: 'Resource name for the matching devices.', type: RESOURCE_NAME_TYPE }),
  ),
});

const resourcesSchema = z.strictObject({
  gpus: z
    .array(patternResourceSchema)
    .optional()
    .meta(doc({ description: 'Full-GPU name patterns.' })),
  mig: z
    .array(patternResourceSchema)
    .optional()
    .meta(doc({ description: 'MIG-profile name patterns.' })),
});

const healthSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .meta(
      doc({
        description:
          'Watch NVML XID events and mark the affected devices unhealthy. Env `DP_DISABLE_HEALTHCHECKS` and ' +
          '`DP_ENABLE_HEALTHCHECKS` adjust this (see Health checks).',
      }),
    ),
  disabledXids: z
    .array(z.int().min(0))
    .transform((xids) => [...new Set(xids)].sort((a, b) => a - b))
    .prefault([...DEFAULT_DISABLED_XIDS])
    .meta(
      doc({
        description:
          "XIDs that never mark a device unhealthy. The default is NVIDIA's list of application errors; a list " +
          'given here replaces it.',
        example: '[13, 31, 43, 45, 68, 109, 94]',
      }),
    ),
  recoverAfterSeconds: z
    .int()
    .min(0)
    .default(300)
    .meta(
      doc({
        description:
          'An unhealthy device that reports no new critical XID for this long is advertised healthy again. ' +
          '`0` keeps it unhealthy until the agent restarts (NVIDIA behaviour).',
      }),
    ),
});

const imexSchema = z
  .strictObject({
    channelIDs: z
      .array(z.int())
      .optional()
      .meta(doc({ description: 'IMEX channels to inject: `[]` or `[0]`.' })),
    required: z
      .boolean()
      .optional()
      .meta(doc({ description: 'Fail when a requested channel is missing.' })),
  })
  .superRefine((imex, ctx) => {
    const ids = imex.channelIDs ?? [];
    if (!(ids.length === 0 || (ids.length === 1 && ids[0] === 0))) {
      ctx.addIssue({
        code: 'custom',
        path: ['channelIDs'],
        input: ids,
        message: `channelIDs must be [] or [0] (got [${ids.join(', ')}])`,
      });
    } else if (ids.length > 0 || imex.required) {
      ctx.addIssue({
        code: 'custom',
        path: ids.length > 0 ? ['channelIDs'] : ['required'],
        input: imex,
        message:
          'IMEX channels are not supported by vgpu-agent (expected channelIDs: [] and required: false)',
      });
    }
  });

/** The document as written, validated and defaulted field by field. */
export const configFileSchema = z.strictObject({
  version: z
    .string()
    .optional()
    .transform((version, ctx): typeof CONFIG_VERSION => {
      if (version === undefined || version === '' || version === CONFIG_VERSION) return CONFIG_VERSION;
      ctx.issues.push({ code: 'custom', message: `unknown version: ${version}`, input: version });
      return z.NEVER;
    })
    .meta(
      doc({
        description: 'Format version. Empty or absent means `v1`.',
        defaultText: 'v1',
        choices: [CONFIG_VERSION],
      }),
    ),
  flags: flagsSchema
    .prefault({})
    .meta(doc({ description: 'Agent options; most also exist as a command-line flag.' })),
  resources: resourcesSchema.optional().meta(
    doc({
      description: 'NVIDIA: custom resource names by pattern. Validated like NVIDIA does.',
      ignored:
        'ignored, as by NVIDIA: custom resource names are not supported; the default names ' +
        'nvidia.com/gpu and nvidia.com/mig-<profile> apply',
    }),
  ),
  sharing: sharingSchema.prefault({}).meta(doc({ description: 'How GPUs are shared between containers.' })),
  health: healthSchema.prefault({}).meta(doc({ description: 'Device health monitoring (vgpu-agent only).' })),
  imex: imexSchema.optional().meta(
    doc({
      description: 'NVIDIA: IMEX channels. Only the empty form (`channelIDs: []`) is accepted.',
      ignored: 'no effect: IMEX channels are not supported by vgpu-agent',
    }),
  ),
});

type ConfigFile = z.output<typeof configFileSchema>;

/** The effective configuration: every default filled, ignored sections dropped, names fully qualified. */
/** Keys accepted for NVIDIA compatibility but without effect stay out of the effective config. */
function pluginSettings(plugin: ConfigFile['flags']['plugin']) {
  const { nvidiaCTKPath: _ctk, containerDriverRoot: _root, ...used } = plugin;
  return used;
}

function toEffective(config: ConfigFile) {
  const { flags, sharing, health } = config;
  return {
    version: config.version,
    flags: {
      migStrategy: flags.migStrategy,
      failOnInitError: flags.failOnInitError,
      nvidiaDriverRoot: flags.nvidiaDriverRoot,
      // NVIDIA's rule (api/config/v1/config.go): an unset or empty dev root is the driver root.
      nvidiaDevRoot: flags.nvidiaDevRoot || flags.nvidiaDriverRoot,
      gdrcopyEnabled: flags.gdrcopyEnabled,
      gdsEnabled: flags.gdsEnabled,
      mofedEnabled: flags.mofedEnabled,
      deviceDiscoveryStrategy: flags.deviceDiscoveryStrategy,
      plugin: pluginSettings(flags.plugin),
    },
    sharing: {
      timeSlicing: sharing.timeSlicing ?? {
        renameByDefault: false,
        failRequestsGreaterThanOne: false,
        resources: [] as TimeSlicedResource[],
      },
      split: sharing.split ?? { resources: [] as SplitResource[], hookPath: DEFAULT_HOOK_PATH },
      hami: sharing.hami ?? null,
    },
    health,
  };
}

/** Parses a document straight to the effective configuration. Use `parseConfig` for file text. */
export const configSchema = configFileSchema.transform(toEffective);

export type EffectiveConfig = z.output<typeof configSchema>;
