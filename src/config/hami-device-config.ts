/**
 * HAMi's own `device-config.yaml` (the `<release>-scheduler-device` ConfigMap its chart makes) read as
 * a vgpu-agent config, so a HAMi user can point the agent at the file the scheduler already reads: its
 * `nvidia:` section becomes `sharing.hami`. Keys that mean the same on the node map one to one; keys
 * only HAMi's scheduler or webhook read, and the other vendors' sections, are accepted with a warning
 * (the scheduler keeps reading them); node keys vgpu-agent cannot honour and unknown keys are errors
 * naming the key.
 */
import { closestMatch } from './did-you-mean.js';
import type { ConfigIssue } from './errors.js';

/** `nvidia:` keys with the same meaning in `sharing.hami`. */
const MAPPED_KEYS = [
  'resourceCountName',
  'resourceMemoryName',
  'resourceMemoryPercentageName',
  'resourceCoreName',
  'resourcePriorityName',
  'deviceSplitCount',
  'deviceMemoryScaling',
  'deviceCoreScaling',
  'preConfiguredDeviceMemory',
  'disableCoreLimit',
  'libCudaLogLevel',
] as const;

/** `nvidia:` keys only HAMi's scheduler or webhook read: the node has nothing to do with them. */
const SCHEDULER_KEYS = [
  'overwriteEnv',
  'defaultMemory',
  'defaultCores',
  'defaultGPUNum',
  'memoryFactor',
  'gpuCorePolicy',
  'runtimeClassName',
];

/** Keys for HAMi's dynamic MIG mode (`operatingmode: mig`), which vgpu-agent does not provide. */
const MIG_KEYS = ['migProfileAllowlist', 'knownMigGeometries'];

type Locate = (path: readonly PropertyKey[]) => { line: number; column: number } | undefined;

export interface HamiTranslation {
  /** a vgpu-agent document: `sharing.hami` from the mapped keys */
  document: Record<string, unknown>;
  warnings: ConfigIssue[];
  errors: ConfigIssue[];
}

/** Our own top-level keys: a document with any of them is ours, even if it also has `nvidia`. */
const OWN_TOP_LEVEL = ['version', 'flags', 'resources', 'sharing', 'health', 'imex'];

/** A document is HAMi's device-config.yaml when it has an `nvidia:` section and none of our keys. */
export function isHamiDeviceConfig(data: unknown): data is Record<string, unknown> {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return false;
  return 'nvidia' in data && !OWN_TOP_LEVEL.some((key) => key in data);
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

export function translateHamiDeviceConfig(
  data: Record<string, unknown>,
  source: string,
  locate: Locate,
): HamiTranslation {
  const issue = (path: (string | number)[], message: string): ConfigIssue => ({
    source,
    path: path.join('.'),
    message,
    ...locate(path),
  });
  const warnings: ConfigIssue[] = [];
  const errors: ConfigIssue[] = [];
  for (const vendor of Object.keys(data).filter((k) => k !== 'nvidia')) {
    warnings.push(issue([vendor], "not an NVIDIA section: read by HAMi's scheduler only, ignored here"));
  }
  const nvidia = data.nvidia;
  if (!isRecord(nvidia)) {
    errors.push(issue(['nvidia'], 'must be a mapping of HAMi nvidia settings'));
    return { document: {}, warnings, errors };
  }
  const hami: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(nvidia)) {
    const at = ['nvidia', key];
    if ((MAPPED_KEYS as readonly string[]).includes(key)) hami[key] = value;
    else if (SCHEDULER_KEYS.includes(key))
      warnings.push(issue(at, "read by HAMi's scheduler and webhook, not by the node: ignored here"));
    else if (MIG_KEYS.includes(key))
      warnings.push(issue(at, "for HAMi's dynamic MIG mode, which vgpu-agent does not provide: ignored"));
    else if (key === 'enableNumaTopology') {
      if (value !== true)
        warnings.push(issue(at, "vgpu-agent always gives kubelet each GPU's NUMA node: ignored"));
    } else errors.push(issue(at, unknownKeyMessage(key)));
  }
  return { document: { version: 'v1', sharing: { hami } }, warnings, errors };
}

function unknownKeyMessage(key: string): string {
  const known = [...MAPPED_KEYS, ...SCHEDULER_KEYS, ...MIG_KEYS, 'enableNumaTopology'];
  const suggestion = closestMatch(key, known);
  return (
    `unknown HAMi nvidia setting, or one vgpu-agent cannot honour` +
    (suggestion ? ` (did you mean ${suggestion}?)` : '') +
    '; HAMi node settings vgpu-agent maps: ' +
    MAPPED_KEYS.join(', ')
  );
}

/** A schema issue on `sharing.hami.<key>` is reported where the key is in HAMi's file. */
export function hamiIssuePath(path: string): string {
  return path.replace(/^sharing\.hami\b/, 'nvidia');
}
