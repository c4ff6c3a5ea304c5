/** The configuration package: the file format, its loading and validation, and the settings around it. */

export type { DeviceRef, DeviceSelection } from './devices.js';
export { type ConfigIssue, formatIssue, formatPath } from './errors.js';
export { canonicalJson, configHash } from './hash.js';
export {
  type ConfiguredHealth,
  DISABLE_HEALTHCHECKS_ENV,
  ENABLE_HEALTHCHECKS_ENV,
  type HealthCheckSettings,
  healthChecksFromEnv,
  isXidIgnored,
} from './health-checks.js';
export { loadConfigFile, type ParseResult, parseConfig } from './load.js';
export {
  ALLOCATION_POLICIES,
  CONFIG_VERSION,
  configFileSchema,
  configSchema,
  DEFAULT_DISABLED_XIDS,
  DEFAULT_HOOK_PATH,
  DEVICE_ID_STRATEGIES,
  DEVICE_LIST_STRATEGIES,
  type DeviceListStrategy,
  type EffectiveConfig,
  MIG_STRATEGIES,
  type SplitResource,
  type TimeSlicedResource,
} from './schema.js';
export {
  applyOverrides,
  collectOverrides,
  OVERRIDABLE_SETTINGS,
  type OverridableSetting,
  type OverrideKey,
  type OverrideOrigins,
  type OverrideResult,
  type RawOverride,
  type SettingOverrides,
} from './settings.js';
