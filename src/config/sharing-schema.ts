/** `sharing`: NVIDIA's time-slicing, HAMi-style split slices, and MPS (rejected). */
import { z } from 'zod';
import { describeValue } from './describe.js';
import type { DeviceSelection } from './devices.js';
import { hamiSchema } from './hami-schema.js';
import { MAX_RESOURCE_NAME_LENGTH, SHARED_RENAME_SUFFIX } from './resource-name.js';
import {
  absolutePath,
  devicesSchema,
  doc,
  RESOURCE_NAME_RULES,
  RESOURCE_NAME_TYPE,
  resourceName,
  whenMissing,
} from './schema-fields.js';

export const DEFAULT_HOOK_PATH = '/usr/local/vgpu';

/**
 * Most replicas or slices per GPU. Kubelet receives a resource's whole device list in one ListAndWatch
 * message of at most 4 MiB (gRPC's default limit), of which vgpu-agent uses 3.5 MiB. A device with the
 * longest ID the API allows (63 characters) takes at most 93 bytes there, so one GPU's 32,768 shares
 * take at most 2.9 MiB: a larger value could not be sent from any node. Whether a node's GPUs together
 * fit is checked against its inventory (src/devices/device-list-size.ts).
 */
export const MAX_SHARES_PER_GPU = 32_768;

const SIZE_NOTE =
  "A resource's devices on a node must also fit one kubelet message together (3.5 MiB, about 54,000 devices).";

/** `<subject> must be <= 32768 (got …)`, saying why: replicas in NVIDIA's words, count in ours. */
const tooManyShares = (subject: string, what: string) => (issue: { input?: unknown }) =>
  `${subject}must be <= ${MAX_SHARES_PER_GPU} (got ${describeValue(issue.input)}): one GPU's ${what} must fit in kubelet's 4 MiB device list`;

/** The `name` of a shared resource entry: which resource's devices it shares. */
const sharedResourceName = (description: string) =>
  resourceName('no resource name specified').meta(
    doc({
      description: `${description} ${RESOURCE_NAME_RULES}`,
      type: RESOURCE_NAME_TYPE,
      example: 'nvidia.com/gpu',
    }),
  );

/** The `rename` of a shared resource entry: the name its shares are advertised under. */
const sharedResourceRename = (description: string, defaultText: string, example: string) =>
  resourceName()
    .optional()
    .meta(doc({ description, type: RESOURCE_NAME_TYPE, defaultText, example }));

const timeSlicedResourceSchema = z.strictObject({
  name: sharedResourceName('Resource to share: `gpu`, or `mig-<profile>` with migStrategy mixed.'),
  rename: sharedResourceRename(
    `Advertise the replicas under this name instead. ${RESOURCE_NAME_RULES} NVIDIA ignores it; vgpu-agent honours it.`,
    '`<name>.shared` with renameByDefault, else none',
    'nvidia.com/gpu-ts',
  ),
  devices: devicesSchema,
  replicas: z
    .int(whenMissing('no replicas specified'))
    .min(2, { error: (issue) => `number of replicas must be >= 2 (got ${describeValue(issue.input)})` })
    .max(MAX_SHARES_PER_GPU, { error: tooManyShares('number of replicas ', 'replicas') })
    .meta(
      doc({
        description:
          'Devices advertised per GPU. Each is `<uuid>::<n>`; the containers that get them share the GPU ' +
          'with no memory or fault isolation. ' +
          SIZE_NOTE,
        example: '4',
      }),
    ),
});

type ResolvedRename = string | null;

/** With renameByDefault NVIDIA advertises `<name>.shared`; the result must still be a valid name. */
function sharedRename(name: string, ctx: z.core.$RefinementCtx, index: number): ResolvedRename {
  const renamed = `${name}${SHARED_RENAME_SUFFIX}`;
  if (renamed.length > MAX_RESOURCE_NAME_LENGTH) {
    ctx.issues.push({
      code: 'custom',
      message: `with renameByDefault this resource would be advertised as ${JSON.stringify(renamed)}, longer than ${MAX_RESOURCE_NAME_LENGTH} characters`,
      input: name,
      path: ['resources', index, 'name'],
    });
  }
  return renamed;
}

const timeSlicingSchema = z
  .strictObject({
    renameByDefault: z
      .boolean()
      .default(false)
      .meta(doc({ description: 'Advertise every entry without `rename` as `<name>.shared`.' })),
    failRequestsGreaterThanOne: z
      .boolean()
      .default(false)
      .meta(
        doc({
          description:
            'Reject a container that requests more than one replica, since more replicas do not give more GPU.',
        }),
      ),
    resources: z
      .array(timeSlicedResourceSchema, whenMissing('no resources specified'))
      .min(1, 'no resources specified')
      .meta(doc({ description: 'Resources to time-slice.' })),
  })
  .transform((ts, ctx) => ({
    renameByDefault: ts.renameByDefault,
    failRequestsGreaterThanOne: ts.failRequestsGreaterThanOne,
    resources: ts.resources.map((r, index) => ({
      name: r.name,
      rename:
        resolveRename(r.name, r.rename) ?? (ts.renameByDefault ? sharedRename(r.name, ctx, index) : null),
      devices: r.devices,
      replicas: r.replicas,
    })),
  }));

/** A rename to the resource's own name is no rename; normalising it keeps the config hash stable. */
function resolveRename(name: string, rename: string | undefined): ResolvedRename | undefined {
  return rename === name ? null : rename;
}

const splitResourceSchema = z
  .strictObject({
    name: sharedResourceName('Resource whose GPUs are split into slices: `gpu` (full GPUs only).'),
    rename: sharedResourceRename(
      `Advertise the slices under this name instead. ${RESOURCE_NAME_RULES}`,
      'none',
      'nvidia.com/vgpu',
    ),
    devices: devicesSchema,
    count: z
      .int()
      .min(1)
      .max(MAX_SHARES_PER_GPU, { error: tooManyShares('', 'slices') })
      .default(10)
      .meta(doc({ description: `Slices per GPU (HAMi \`deviceSplitCount\`). ${SIZE_NOTE}` })),
    memoryScaling: z
      .number()
      .positive()
      .default(1)
      .meta(
        doc({
          description:
            'Each slice may use `memoryScaling × GPU memory / count` (HAMi `deviceMemoryScaling`). Above 1 the ' +
            'slices together may exceed the physical memory (oversubscription): the GPU can then run out.',
        }),
      ),
    coreScaling: z
      .number()
      .positive()
      .default(1)
      .meta(
        doc({
          description:
            'Each slice may use `coreScaling × 100 / count` percent of the SMs (HAMi `deviceCoreScaling`). ' +
            'Above 1 the slices together may exceed 100% (they compete when all are busy).',
        }),
      ),
  })
  .superRefine((r, ctx) => {
    // A slice larger than its GPU, or one whose SM limit rounds to 0 (which HAMi-core reads as "no limit").
    // Zod still runs this after a field failed its own bounds; those fields are reported already.
    const countValid = Number.isInteger(r.count) && r.count >= 1 && r.count <= MAX_SHARES_PER_GPU;
    if (!(countValid && r.memoryScaling > 0 && r.coreScaling > 0)) return;
    if (r.memoryScaling > r.count) {
      ctx.addIssue({
        code: 'custom',
        path: ['memoryScaling'],
        input: r.memoryScaling,
        message: `must be <= count (${r.count}): a slice cannot have more memory than its GPU (got ${r.memoryScaling})`,
      });
    }
    if (r.coreScaling > r.count) {
      ctx.addIssue({
        code: 'custom',
        path: ['coreScaling'],
        input: r.coreScaling,
        message: `must be <= count (${r.count}): a slice cannot have more than 100% of the SMs (got ${r.coreScaling})`,
      });
    } else if ((100 * r.coreScaling) / r.count < 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['coreScaling'],
        input: r.coreScaling,
        message: `each of the ${r.count} slices would get less than 1% of the SMs (got coreScaling ${r.coreScaling})`,
      });
    }
  })
  .transform((r) => ({ ...r, rename: resolveRename(r.name, r.rename) ?? null }));

const splitSchema = z.strictObject({
  resources: z
    .array(splitResourceSchema, whenMissing('no resources specified'))
    .min(1, 'no resources specified')
    .meta(doc({ description: 'Resources to split into slices with memory and compute limits.' })),
  hookPath: absolutePath()
    .default(DEFAULT_HOOK_PATH)
    .meta(
      doc({
        description:
          "Host directory holding HAMi-core's `libvgpu.so` and `ld.so.preload` (HAMi `HOOK_PATH` + `/vgpu`), " +
          'at the same path in the agent; split containers get the library where `ld.so.preload` names it.',
      }),
    ),
});

const sharingFields = z.strictObject({
  timeSlicing: timeSlicingSchema
    .optional()
    .meta(doc({ description: "Time-slicing, NVIDIA's format: several containers take turns on one GPU." })),
  mps: z
    .never({ error: 'not supported by vgpu-agent; use sharing.timeSlicing or sharing.split' })
    .optional()
    .meta(doc({ description: 'NVIDIA MPS sharing. Rejected: use `timeSlicing` or `split`.' })),
  split: splitSchema.optional().meta(
    doc({
      description:
        'HAMi-style slices: each GPU is advertised as `count` devices, each limited in memory and SMs by ' +
        'HAMi-core inside the container.',
    }),
  ),
  hami: hamiSchema.optional().meta(
    doc({
      description:
        "vgpu-agent as the node side of HAMi's scheduler: each container gets the GPU, memory and compute " +
        'HAMi decided (`nvidia.com/gpumem`, `nvidia.com/gpucores` requests), enforced by HAMi-core. Cannot be ' +
        'combined with `timeSlicing` or `split`. Needs `--kube-api` and `NODE_NAME`.',
    }),
  ),
});

export type TimeSlicedResource = z.output<typeof timeSlicingSchema>['resources'][number];
export type SplitResource = z.output<typeof splitResourceSchema>;
type Sharing = z.output<typeof sharingFields>;

interface SharedEntry {
  strategy: 'timeSlicing' | 'split';
  index: number;
  name: string;
  rename: string | null;
  devices: DeviceSelection;
}

const entryPath = (e: SharedEntry) => `sharing.${e.strategy}.resources[${e.index}]`;

/**
 * Rules that span entries: a resource (or an advertised name) is time-sliced or split, not both; and a
 * resource listed twice must say which GPUs each entry takes, else every GPU would be shared twice.
 */
function checkSharedResources(sharing: Sharing, ctx: z.core.$RefinementCtx<Sharing>): void {
  const entries: SharedEntry[] = [
    ...(sharing.timeSlicing?.resources ?? []).map((r, index) => ({
      strategy: 'timeSlicing' as const,
      index,
      ...r,
    })),
    ...(sharing.split?.resources ?? []).map((r, index) => ({ strategy: 'split' as const, index, ...r })),
  ];
  entries.forEach((entry, i) => {
    const earlier = entries.slice(0, i);
    const issue = (key: string, input: string, message: string) =>
      ctx.addIssue({ code: 'custom', path: [entry.strategy, 'resources', entry.index, key], input, message });
    const sameName = earlier.find((e) => e.name === entry.name);
    if (sameName && sameName.strategy !== entry.strategy) {
      issue(
        'name',
        entry.name,
        `${entry.name} is also listed at ${entryPath(sameName)}.name; a resource is either time-sliced or split`,
      );
      return;
    }
    if (sameName && (entry.devices.type !== 'list' || sameName.devices.type !== 'list')) {
      issue(
        'name',
        entry.name,
        `${entry.name} is listed more than once (also at ${entryPath(sameName)}); entries for one resource must each select their GPUs with a devices list`,
      );
    }
    const advertised = entry.rename ?? entry.name;
    const clash = earlier.find((e) => e.strategy !== entry.strategy && (e.rename ?? e.name) === advertised);
    if (clash) {
      issue(
        entry.rename ? 'rename' : 'name',
        advertised,
        `${advertised} is also advertised by ${entryPath(clash)}; a resource is either time-sliced or split`,
      );
    }
  });
}

/** HAMi's scheduler owns every GPU of a node in HAMi mode: nothing else may share them. */
function checkHamiAlone(sharing: Sharing, ctx: z.core.$RefinementCtx<Sharing>): void {
  if (!sharing.hami) return;
  for (const other of ['timeSlicing', 'split'] as const) {
    if (!sharing[other]) continue;
    ctx.addIssue({
      code: 'custom',
      path: [other],
      input: sharing[other],
      message: `cannot be combined with sharing.hami: HAMi's scheduler decides how every GPU of the node is shared`,
    });
  }
}

export const sharingSchema = sharingFields.superRefine((sharing, ctx) => {
  checkSharedResources(sharing, ctx);
  checkHamiAlone(sharing, ctx);
});
