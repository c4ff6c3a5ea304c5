/**
 * Per-node config selection, as NVIDIA users know it (config-manager): a mounted ConfigMap holds one
 * named config per key, and the agent picks `--config-name`, else the node label
 * `nvidia.com/device-plugin.config`, else the key `default`, else the only key. Pure: the caller lists
 * the directory (see `locateConfig` in source.ts) and reads the chosen file.
 */
import path from 'node:path';
import type { Result } from '../result.js';

/** The node label NVIDIA's config-manager reads to choose a node's config. */
export const CONFIG_LABEL = 'nvidia.com/device-plugin.config';

/** Why this config was chosen: `file` when the path is a plain file rather than a ConfigMap directory. */
export type SelectionReason = 'flag' | 'label' | 'default' | 'only' | 'file';

export interface ConfigSelection {
  /** the key as it appears in the directory (or the file's base name) */
  name: string;
  /** path to read: `<dir>/<key>`, the stable symlink kubelet never replaces */
  file: string;
  reason: SelectionReason;
}

/** What the config path turned out to be. `keys` are the directory's entries that can be configs. */
export type ConfigLocation =
  | { kind: 'file'; path: string }
  | { kind: 'directory'; path: string; keys: readonly string[] };

export interface SelectionInput {
  /** `--config-name` / `CONFIG_NAME` */
  configName?: string | undefined;
  /** value of the node label `nvidia.com/device-plugin.config`, when known */
  nodeLabel?: string | undefined;
}

export type SelectionResult = Result<ConfigSelection, string>;

/** Extensions people give ConfigMap keys (`config.yaml`); a name matches a key with or without them. */
const CONFIG_EXTENSIONS = ['.yaml', '.yml', '.json'];

/**
 * Which directory entries can be configs: kubelet's own entries (`..data`, `..<timestamp>`, `..data_tmp`)
 * and other hidden files start with a dot. Sorted, so messages and the "only key" rule are stable.
 */
export function configKeys(entries: readonly string[]): string[] {
  return entries.filter((e) => !e.startsWith('.')).sort();
}

/** `a100-ts.yaml` → `a100-ts`; names without a known extension are unchanged. */
function stem(name: string): string {
  const ext = CONFIG_EXTENSIONS.find((e) => name.toLowerCase().endsWith(e));
  return ext && name.length > ext.length ? name.slice(0, -ext.length) : name;
}

/**
 * The key a name designates: the exact key if present, else the one key whose name without extension
 * equals the name without extension. Several such keys (`a.yaml` and `a.json`) are ambiguous.
 */
function findKey(keys: readonly string[], name: string): { key?: string; ambiguous?: string[] } {
  if (keys.includes(name)) return { key: name };
  const matches = keys.filter((k) => stem(k) === stem(name));
  if (matches.length === 1) return { key: matches[0]! };
  return matches.length === 0 ? {} : { ambiguous: matches };
}

const ORIGIN_TEXT = { flag: '--config-name', label: `node label ${CONFIG_LABEL}` } as const;

export function selectConfig(location: ConfigLocation, input: SelectionInput = {}): SelectionResult {
  const configName = nonEmpty(input.configName);
  if (location.kind === 'file') return selectFile(location.path, configName);

  const dir = location.path;
  const { keys } = location;
  const fail = (error: string): SelectionResult => ({ ok: false, error: `${dir}: ${error}` });
  const chosen = (key: string, reason: SelectionReason): SelectionResult => ({
    ok: true,
    value: { name: key, file: path.join(dir, key), reason },
  });
  if (keys.length === 0) {
    return fail('no configs in this directory (expected a mounted ConfigMap with at least one key)');
  }

  // An empty label means "not set", as in NVIDIA's config-manager.
  const requested =
    configName !== undefined
      ? { name: configName, reason: 'flag' as const }
      : nonEmpty(input.nodeLabel) !== undefined
        ? { name: nonEmpty(input.nodeLabel)!, reason: 'label' as const }
        : undefined;
  if (requested) {
    const found = findKey(keys, requested.name);
    if (found.key !== undefined) return chosen(found.key, requested.reason);
    const origin = ORIGIN_TEXT[requested.reason];
    if (found.ambiguous) {
      return fail(
        `config ${requested.name} (named by ${origin}) matches several keys: ${found.ambiguous.join(', ')}`,
      );
    }
    // NVIDIA's words, then what would have worked.
    return fail(
      `specified config ${requested.name} does not exist (available: ${keys.join(', ')}); ` +
        `named by ${origin}`,
    );
  }

  const fallback = findKey(keys, 'default');
  if (fallback.key !== undefined) return chosen(fallback.key, 'default');
  if (fallback.ambiguous) return fail(`several keys could be the default: ${fallback.ambiguous.join(', ')}`);
  if (keys.length === 1) return chosen(keys[0]!, 'only');
  return fail(
    `several configs (${keys.join(', ')}) and none chosen: set --config-name or the node label ` +
      `${CONFIG_LABEL}, or add a key named default`,
  );
}

/**
 * A plain file is the config. `--config-name` must then name that file (a mistake otherwise: the user
 * expected a ConfigMap directory); the node label is ignored, as a single file has nothing to choose from.
 */
function selectFile(file: string, configName: string | undefined): SelectionResult {
  const name = path.basename(file);
  if (configName !== undefined && stem(configName) !== stem(name)) {
    return {
      ok: false,
      error:
        `${file}: --config-name ${configName} chooses a key of a ConfigMap directory, but this path ` +
        'is a single file (give the directory, or drop --config-name)',
    };
  }
  return { ok: true, value: { name, file, reason: 'file' } };
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === '' ? undefined : trimmed;
}
