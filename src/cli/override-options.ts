/**
 * Command-line flags for the settings that also live in the config file (NVIDIA's flags and
 * spellings), built from the config package's table so --help and the parser never drift.
 */
import type { EffectiveConfig } from '../config/schema.js';
import {
  applyOverrides,
  collectOverrides,
  OVERRIDABLE_SETTINGS,
  type OverrideResult,
  type SettingOverrides,
} from '../config/settings.js';
import type { OptionSpec, OptionValues } from './options.js';

const plain = (text: string) => text.replaceAll('`', '');

// The choices are shown, not checked here: applyOverrides rejects a value in NVIDIA's words, for the
// flag and its environment variable alike.
export const overrideOptions: OptionSpec[] = OVERRIDABLE_SETTINGS.map((setting) => ({
  flag: setting.flag.slice(2),
  aliases: setting.aliases.map((a) => a.slice(2)),
  type: setting.kind === 'boolean' ? 'boolean' : 'string',
  multiple: setting.kind === 'list',
  envHelp: setting.env.join(', '),
  description: `${plain(setting.description).split('. ')[0]!.replace(/\.$/, '')} (overrides the file${
    setting.choices && setting.kind !== 'list' ? `; one of ${setting.choices.join('|')}` : ''
  })`,
}));

/** Flag > env > file: returns a function that applies them to any config loaded from the file. */
export function overridesFrom(
  values: OptionValues,
  env: NodeJS.ProcessEnv,
): (config: EffectiveConfig) => OverrideResult {
  const flags: SettingOverrides = {};
  for (const setting of OVERRIDABLE_SETTINGS) {
    const value = values[setting.flag.slice(2)];
    if (value !== undefined) flags[setting.key] = value;
  }
  const { overrides, origins } = collectOverrides(flags, env);
  return (config) => applyOverrides(config, overrides, origins);
}
