/** Config text or file → effective configuration, or every problem found, each naming file, path and value. */
import type { Result } from '../result.js';
import { type ConfigIssue, formatIssue, formatPath, issuesFromZod, type Locate } from './errors.js';
import { hamiIssuePath, isHamiDeviceConfig, translateHamiDeviceConfig } from './hami-device-config.js';
import { configFileErrorMap } from './messages.js';
import { nullsNvidiaRejects } from './nvidia-wording.js';
import { DEFAULT_READ_TIMEOUT_MS, readRegularFile } from './read-file.js';
import { configFileSchema, configSchema, type EffectiveConfig } from './schema.js';
import { ignoredKeys } from './warnings.js';
import { parseYaml } from './yaml-source.js';

export interface ParsedConfig {
  config: EffectiveConfig;
  /** what was accepted but deserves a line: YAML oddities, keys NVIDIA ignores */
  warnings: string[];
}

export type ParseResult = Result<ParsedConfig, ConfigIssue[]>;

/** ConfigMaps hold at most 1 MiB; anything larger is not a config file. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Parses YAML or JSON config text. `source` names the text in messages (usually the file path).
 * An empty document is an error rather than "all defaults": a ConfigMap key caught mid-update reads as
 * empty, and it must not replace a good config. Write `version: v1` for all defaults.
 */
export function parseConfig(text: string, source: string): ParseResult {
  const issue = (message: string, position?: { line: number; column: number }): ConfigIssue => ({
    source,
    path: '',
    message,
    ...position,
  });
  const yaml = parseYaml(text);
  if (!yaml.ok) return { ok: false, error: yaml.error.map((e) => issue(e.message, e.position)) };
  const { data, locate } = yaml.value;
  if (data === null || data === undefined) {
    return {
      ok: false,
      error: [issue('the document is empty (write "version: v1" for the default configuration)')],
    };
  }
  if (isHamiDeviceConfig(data)) {
    const yamlWarnings = yaml.value.warnings.map((w) => formatIssue(issue(w.message, w.position)));
    return parseHamiDeviceConfig(data, source, locate, yamlWarnings);
  }
  // A null value means "not set", as in NVIDIA's Go loader (its effective config prints unset flags as
  // null), except for the time-slicing keys NVIDIA reads as an empty value and rejects.
  const rejectedNulls = nullsNvidiaRejects(data).map(
    ({ path, message }): ConfigIssue => ({ source, path: formatPath(path), message, ...locate(path) }),
  );
  const document = withoutNullValues(data);
  const parsed = configSchema.safeParse(document, { error: configFileErrorMap });
  if (!parsed.success || rejectedNulls.length > 0) {
    // A rejected null is dropped before validation; what the schema says about the missing key is not news.
    const reported = new Set(rejectedNulls.map((issue) => issue.path));
    const errors = parsed.success
      ? []
      : issuesFromZod(parsed.error.issues, source, configFileSchema, locate).filter(
          (issue) => !reported.has(issue.path),
        );
    return { ok: false, error: inDocumentOrder([...rejectedNulls, ...errors]) };
  }
  const warnings = [
    ...yaml.value.warnings.map((w) => formatIssue(issue(w.message, w.position))),
    ...ignoredKeys(configFileSchema, document).map((k) =>
      formatIssue({ source, path: k.path, message: k.message }),
    ),
  ];
  return { ok: true, value: { config: parsed.data, warnings } };
}

/**
 * Reads and parses a config file. Missing files, directories, non-regular files (a FIFO, a device),
 * empty files and reads that stall past `timeoutMs` are reported as issues; nothing here blocks.
 */
export async function loadConfigFile(
  path: string,
  { timeoutMs = DEFAULT_READ_TIMEOUT_MS }: { timeoutMs?: number } = {},
): Promise<ParseResult> {
  const fail = (message: string): ParseResult => ({
    ok: false,
    error: [{ source: path, path: '', message }],
  });
  const read = await readRegularFile(path, { maxBytes: MAX_CONFIG_BYTES, timeoutMs });
  if (!read.ok) return fail(read.error);
  if (read.value.trim() === '')
    return fail('file is empty (write "version: v1" for the default configuration)');
  return parseConfig(read.value, path);
}

/**
 * HAMi's device-config.yaml: its `nvidia:` section as `sharing.hami`. Problems are reported at the keys
 * of HAMi's file (`nvidia.deviceSplitCount`), not at the `sharing.hami` they map to.
 */
function parseHamiDeviceConfig(
  data: Record<string, unknown>,
  source: string,
  locate: Locate,
  yamlWarnings: string[],
): ParseResult {
  const translated = translateHamiDeviceConfig(data, source, locate);
  const document = withoutNullValues(translated.document);
  const parsed = configSchema.safeParse(document, { error: configFileErrorMap });
  const schemaErrors = parsed.success
    ? []
    : issuesFromZod(parsed.error.issues, source, configFileSchema).map((i) => {
        const path = hamiIssuePath(i.path);
        return { ...i, path, ...locate(path.split('.')) };
      });
  const errors = [...translated.errors, ...schemaErrors];
  if (!parsed.success || errors.length > 0) return { ok: false, error: inDocumentOrder(errors) };
  const warnings = [...yamlWarnings, ...translated.warnings.map(formatIssue)];
  return { ok: true, value: { config: parsed.data, warnings } };
}

/** Drops keys whose value is null, at every level (list items are kept: a null item is an error). */
function withoutNullValues(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNullValues);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNullValues(v)]),
  );
}

/** Zod reports unknown keys after the other problems of a mapping; people read a file top to bottom. */
function inDocumentOrder(issues: ConfigIssue[]): ConfigIssue[] {
  const key = (i: ConfigIssue) => (i.line ?? Number.MAX_SAFE_INTEGER) * 1e6 + (i.column ?? 0);
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => key(a.issue) - key(b.issue) || a.index - b.index)
    .map(({ issue }) => issue);
}
