/**
 * `sharing.hami`: vgpu-agent as the node side of HAMi. HAMi's scheduler (its extender and webhook)
 * decides which GPU and how much of it each container gets; the node advertises `deviceSplitCount`
 * replicas per GPU, publishes its GPUs in the `hami.io/node-nvidia-register` node annotation and, on
 * Allocate, carries out the scheduler's decision with HAMi-core. The keys and defaults are those of
 * the `nvidia:` section of HAMi's `device-config.yaml` (and its chart), so values carry over as they are.
 */
import { z } from 'zod';
import { describeValue } from './describe.js';
import { absolutePath, doc, RESOURCE_NAME_TYPE, resourceName } from './schema-fields.js';

export const DEFAULT_HAMI_HOOK_PATH = '/usr/local/vgpu';
/** HAMi's scheduler takes over a node lock older than this (`HAMI_NODELOCK_EXPIRE`, 5m). */
const DEFAULT_NODE_LOCK_TIMEOUT_SECONDS = 300;
/** Most replicas per GPU (same bound as split slices; see sharing-schema.ts). */
const MAX_SPLIT_COUNT = 32_768;

/** HAMi-core's log levels (HAMi's `LibCudaLogLevel`): 0 errors, 1 warnings, 3 infos, 4 debug. */
const LOG_LEVELS = ['0', '1', '3', '4'] as const;

const requestName = (defaultName: string, description: string) =>
  resourceName()
    .default(defaultName)
    .meta(doc({ description, type: RESOURCE_NAME_TYPE, defaultText: defaultName }));

const positiveFactor = (description: string) =>
  z
    .number()
    .positive({ error: (issue) => `must be > 0 (got ${describeValue(issue.input)})` })
    .default(1)
    .meta(doc({ description }));

export const hamiSchema = z.strictObject({
  resourceCountName: requestName(
    'nvidia.com/gpu',
    'Resource advertised to kubelet: `deviceSplitCount` replicas per GPU (HAMi `resourceCountName`).',
  ),
  resourceMemoryName: requestName(
    'nvidia.com/gpumem',
    "Memory request in MiB (HAMi's scheduler reads it; shown by `config check`).",
  ),
  resourceMemoryPercentageName: requestName(
    'nvidia.com/gpumem-percentage',
    "Memory request in percent of the GPU (HAMi's scheduler reads it).",
  ),
  resourceCoreName: requestName(
    'nvidia.com/gpucores',
    "Compute request in percent of the SMs (HAMi's scheduler reads it).",
  ),
  resourcePriorityName: requestName(
    'nvidia.com/priority',
    "Task priority: a container's limit on it becomes `CUDA_TASK_PRIORITY` (0 high, 1 low).",
  ),
  deviceSplitCount: z
    .int()
    .min(1, { error: (issue) => `must be >= 1 (got ${describeValue(issue.input)})` })
    .max(MAX_SPLIT_COUNT, {
      error: (issue) =>
        `must be <= ${MAX_SPLIT_COUNT} (got ${describeValue(issue.input)}): one GPU's replicas must fit in kubelet's 4 MiB device list`,
    })
    .default(10)
    .meta(
      doc({
        description: 'Replicas advertised per GPU: the most containers that can share one GPU.',
      }),
    ),
  deviceMemoryScaling: positiveFactor(
    'Memory registered for the scheduler is the physical MiB times this. Above 1 the containers on a GPU ' +
      'may together be promised more than it has (oversubscription); they get `CUDA_OVERSUBSCRIBE=true`.',
  ),
  deviceCoreScaling: positiveFactor(
    'Compute registered for the scheduler is `100 × deviceCoreScaling` percent.',
  ),
  preConfiguredDeviceMemory: z
    .int()
    .min(0, { error: (issue) => `must be >= 0 MiB (got ${describeValue(issue.input)})` })
    .default(0)
    .meta(
      doc({
        description:
          'MiB registered for a GPU whose total memory reads as 0; 0: such a GPU is not registered. ' +
          'A GPU whose NVML memory query fails (NOT_SUPPORTED, as on GB10) is not in the inventory yet, ' +
          'so this does not bring it back.',
      }),
    ),
  disableCoreLimit: z
    .boolean()
    .default(false)
    .meta(
      doc({
        description:
          'Containers get `GPU_CORE_UTILIZATION_POLICY=disable`: HAMi-core enforces memory limits only.',
      }),
    ),
  libCudaLogLevel: z
    .union([z.int(), z.string()])
    .optional()
    .transform((level, ctx) => {
      if (level === undefined) return null;
      const text = String(level);
      if ((LOG_LEVELS as readonly string[]).includes(text)) return text;
      ctx.issues.push({
        code: 'custom',
        input: level,
        message: `must be one of ${LOG_LEVELS.join(', ')} (got ${describeValue(level)})`,
      });
      return z.NEVER;
    })
    .meta(
      doc({
        description: "HAMi-core's `LIBCUDA_LOG_LEVEL` in containers: 0 errors, 1 warnings, 3 infos, 4 debug.",
        defaultText: 'unset',
        type: 'integer',
        choices: [...LOG_LEVELS],
      }),
    ),
  hookPath: absolutePath()
    .default(DEFAULT_HAMI_HOOK_PATH)
    .meta(
      doc({
        description:
          "Host directory holding HAMi-core's `libvgpu.so` and `ld.so.preload` (HAMi `HOOK_PATH` + `/vgpu`), " +
          'at the same path in the agent. Each container gets `containers/<pod UID>_<container>` there, as ' +
          "HAMi's monitor expects.",
      }),
    ),
  topologyScore: z
    .boolean()
    .default(false)
    .meta(
      doc({
        description:
          'Also publish how well each pair of GPUs is connected (NVLinks and PCIe distance) in the ' +
          "`hami.io/node-nvidia-score` node annotation, for HAMi's `topology-aware` GPU scheduling policy " +
          "(HAMi's plugin does it with `ENABLE_TOPOLOGY_SCORE=true`, which HAMi's chart sets for that " +
          'policy). Turned off, the agent leaves that annotation as it is, as HAMi does.',
      }),
    ),
  nodeLockTimeoutSeconds: z
    .int()
    .min(1)
    .default(DEFAULT_NODE_LOCK_TIMEOUT_SECONDS)
    .meta(
      doc({
        description:
          "A node lock (`hami.io/mutex.lock`) older than this is expired: HAMi's scheduler may have given the " +
          'node to another pod, so Allocate refuses it (HAMi `HAMI_NODELOCK_EXPIRE`).',
      }),
    ),
});

export type HamiSettings = z.output<typeof hamiSchema>;
