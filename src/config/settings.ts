/**
 * Settings that exist both in the file and on the command line. Precedence, as in NVIDIA's plugin:
 * command-line flag > environment variable > file > default. The table below is what the CLI builds its
 * options and `--help` from; values are validated by the same schema fields as the file.
 */
import { z } from 'zod';
import type { Result } from '../result.js';
import { oneOf } from './describe.js';
import { choicesOf, type FieldInfo, schemaAt, typeText, unwrap } from './introspect.js';
import { configErrorMap } from './messages.js';
import { NVIDIA_CHOICES, type NvidiaChoice } from './nvidia-wording.js';
import { configFileSchema, type EffectiveConfig } from './schema.js';

interface SettingDeclaration {
  /** Key under `flags` in the file (and in EffectiveConfig['flags']). */
  path: readonly string[];
  flag: `--${string}`;
  /** NVIDIA's other spellings of the flag, accepted so its command lines keep working. */
  aliases?: readonly `--${string}`[];
  /** Environment variables, first one canonical; NVIDIA's alternatives after it. */
  env: readonly string[];
  /** A comma-separated list on the command line (the flag may also be repeated). */
  list?: true;
}

const DECLARED = {
  migStrategy: { path: ['migStrategy'], flag: '--mig-strategy', env: ['MIG_STRATEGY'] },
  failOnInitError: { path: ['failOnInitError'], flag: '--fail-on-init-error', env: ['FAIL_ON_INIT_ERROR'] },
  nvidiaDriverRoot: {
    path: ['nvidiaDriverRoot'],
    flag: '--nvidia-driver-root',
    aliases: ['--driver-root'],
    env: ['NVIDIA_DRIVER_ROOT'],
  },
  nvidiaDevRoot: {
    path: ['nvidiaDevRoot'],
    flag: '--dev-root',
    aliases: ['--nvidia-dev-root'],
    env: ['NVIDIA_DEV_ROOT'],
  },
  gdrcopyEnabled: { path: ['gdrcopyEnabled'], flag: '--gdrcopy-enabled', env: ['GDRCOPY_ENABLED'] },
  gdsEnabled: { path: ['gdsEnabled'], flag: '--gds-enabled', env: ['GDS_ENABLED'] },
  mofedEnabled: { path: ['mofedEnabled'], flag: '--mofed-enabled', env: ['MOFED_ENABLED'] },
  deviceDiscoveryStrategy: {
    path: ['deviceDiscoveryStrategy'],
    flag: '--device-discovery-strategy',
    env: ['DEVICE_DISCOVERY_STRATEGY'],
  },
  passDeviceSpecs: {
    path: ['plugin', 'passDeviceSpecs'],
    flag: '--pass-device-specs',
    env: ['PASS_DEVICE_SPECS'],
  },
  deviceListStrategy: {
    path: ['plugin', 'deviceListStrategy'],
    flag: '--device-list-strategy',
    env: ['DEVICE_LIST_STRATEGY'],
    list: true,
  },
  deviceIDStrategy: {
    path: ['plugin', 'deviceIDStrategy'],
    flag: '--device-id-strategy',
    env: ['DEVICE_ID_STRATEGY'],
  },
  cdiAnnotationPrefix: {
    path: ['plugin', 'cdiAnnotationPrefix'],
    flag: '--cdi-annotation-prefix',
    env: ['CDI_ANNOTATION_PREFIX'],
  },
  sharedDevicesAllocationPolicy: {
    path: ['plugin', 'sharedDevicesAllocationPolicy'],
    flag: '--shared-devices-allocation-policy',
    env: ['SHARED_DEVICES_ALLOCATION_POLICY'],
  },
} as const satisfies Record<string, SettingDeclaration>;

export type OverrideKey = keyof typeof DECLARED;

export interface OverridableSetting {
  key: OverrideKey;
  flag: `--${string}`;
  aliases: readonly `--${string}`[];
  env: readonly string[];
  /** Path in the file, e.g. `['flags', 'plugin', 'deviceListStrategy']`. */
  path: readonly string[];
  /** How the CLI parses the value: `list` is comma-separated and may be repeated. */
  kind: 'string' | 'boolean' | 'list';
  /** From the schema: for `--help`. */
  description: string;
  type: string;
  defaultText: string;
  choices?: readonly string[];
}

function fieldOf(path: readonly string[]): { schema: z.ZodType; info: FieldInfo } {
  const schema = schemaAt(configFileSchema, ['flags', ...path]);
  if (!schema)
    throw new Error(`settings table names flags.${path.join('.')}, which the schema does not have`);
  return { schema, info: unwrap(schema) };
}

/** Every setting that a flag or environment variable can override, in `--help` order. */
export const OVERRIDABLE_SETTINGS: readonly OverridableSetting[] = Object.entries(DECLARED).map(
  ([key, d]) => {
    const declared: SettingDeclaration = d;
    const { info } = fieldOf(declared.path);
    const choices = choicesOf(info);
    return {
      key: key as OverrideKey,
      flag: declared.flag,
      aliases: declared.aliases ?? [],
      env: declared.env,
      path: ['flags', ...declared.path],
      kind: declared.list ? 'list' : info.base instanceof z.ZodBoolean ? 'boolean' : 'string',
      description: info.doc.description ?? '',
      type: typeText(info),
      defaultText: info.hasDefault ? String(info.defaultValue) : (info.doc.defaultText ?? ''),
      ...(choices ? { choices } : {}),
    };
  },
);

/** A value as a command-line parser or the environment gives it. */
export type RawOverride = string | boolean | readonly string[];
export type SettingOverrides = Partial<Record<OverrideKey, RawOverride>>;
/** Which flag or variable each override came from, for messages. */
export type OverrideOrigins = Partial<Record<OverrideKey, string>>;

/**
 * Picks each setting's override: the flag when the CLI parser saw it, else the first environment variable
 * that is set to something other than blanks (Helm renders unset values as empty strings).
 */
export function collectOverrides(
  flags: SettingOverrides,
  env: Readonly<Record<string, string | undefined>>,
): { overrides: SettingOverrides; origins: OverrideOrigins } {
  const overrides: SettingOverrides = {};
  const origins: OverrideOrigins = {};
  for (const setting of OVERRIDABLE_SETTINGS) {
    const fromFlag = flags[setting.key];
    if (fromFlag !== undefined) {
      overrides[setting.key] = fromFlag;
      origins[setting.key] = setting.flag;
      continue;
    }
    const name = setting.env.find((n) => (env[n] ?? '').trim() !== '');
    if (name !== undefined) {
      overrides[setting.key] = env[name]!;
      origins[setting.key] = name;
    }
  }
  return { overrides, origins };
}

export type OverrideResult = Result<EffectiveConfig, string[]>;

// strconv.ParseBool, which NVIDIA's flag library uses for boolean flags and variables.
const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

/**
 * Applies flag/env overrides to a file's effective configuration (pure: returns a new object). Errors read
 * `invalid --gds-enabled: maybe (expected true or false)`, naming the variable when it came from one; a
 * value NVIDIA's plugin rejects too starts with NVIDIA's words:
 * `unknown MIG strategy: foo (set by MIG_STRATEGY; expected none, single or mixed)`.
 * When the driver root is overridden and the dev root is not, the dev root follows the driver root if it
 * was equal to it (it was defaulted, or set to the same directory).
 */
export function applyOverrides(
  effective: EffectiveConfig,
  overrides: SettingOverrides,
  origins: OverrideOrigins = {},
): OverrideResult {
  const config = structuredClone(effective);
  const errors: string[] = [];
  for (const setting of OVERRIDABLE_SETTINGS) {
    const raw = overrides[setting.key];
    if (raw === undefined) continue;
    const origin = origins[setting.key] ?? setting.flag;
    const value = coerce(setting, raw);
    const { schema } = fieldOf(setting.path.slice(1));
    const parsed = value === undefined ? undefined : schema.safeParse(value, { error: configErrorMap });
    if (!parsed?.success) {
      errors.push(overrideError(setting, origin, raw, parsed?.error.issues[0]?.message));
      continue;
    }
    setAt(config.flags, setting.path.slice(1), parsed.data);
  }
  if (errors.length > 0) return { ok: false, error: errors };
  // NVIDIA resolves an unset dev root after applying flags; an empty override also means "unset".
  const devRootUnset =
    overrides.nvidiaDevRoot === undefined
      ? effective.flags.nvidiaDevRoot === effective.flags.nvidiaDriverRoot
      : config.flags.nvidiaDevRoot === '';
  if (devRootUnset) config.flags.nvidiaDevRoot = config.flags.nvidiaDriverRoot;
  return { ok: true, value: config };
}

function coerce(setting: OverridableSetting, raw: RawOverride): unknown {
  if (setting.kind === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (typeof raw !== 'string') return undefined;
    const text = raw.trim();
    return GO_TRUE.includes(text) ? true : GO_FALSE.includes(text) ? false : undefined;
  }
  if (setting.kind === 'list') {
    const parts = (typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : []).flatMap((s) =>
      String(s).split(','),
    );
    return parts.map((s) => s.trim()).filter((s) => s !== '');
  }
  return typeof raw === 'string' ? raw.trim() : undefined;
}

const NVIDIA_OVERRIDE_CHOICES: Partial<Record<OverrideKey, NvidiaChoice>> = NVIDIA_CHOICES;

function overrideError(
  setting: OverridableSetting,
  origin: string,
  raw: RawOverride,
  schemaMessage: string | undefined,
): string {
  const text = rawText(raw);
  const expected = expectation(setting, schemaMessage);
  const nvidia = NVIDIA_OVERRIDE_CHOICES[setting.key];
  if (!nvidia || nvidia.accepted.includes(text)) return `invalid ${origin}: ${text} (${expected})`;
  const words = nvidia.rejection(text);
  // NVIDIA's words name the flag, not the variable it may have come from.
  return `${words} (${words.includes(origin) ? '' : `set by ${origin}; `}${expected})`;
}

function expectation(setting: OverridableSetting, schemaMessage: string | undefined): string {
  if (setting.choices) return `expected ${oneOf(setting.choices)}`;
  if (setting.kind === 'boolean') return 'expected true or false';
  // The schema's own words, minus the "(got …)" the caller already prints.
  return (schemaMessage ?? `expected ${setting.type}`).replace(/ \(got .*\)$/, '');
}

function rawText(raw: RawOverride): string {
  if (typeof raw === 'string') return raw === '' ? '""' : raw;
  if (typeof raw === 'boolean') return String(raw);
  return raw.join(',');
}

function setAt(target: object, path: readonly string[], value: unknown): void {
  let node = target as Record<string, unknown>;
  for (const segment of path.slice(0, -1)) node = node[segment] as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}
