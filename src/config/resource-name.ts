/**
 * Resource names follow NVIDIA's `NewResourceName` (api/config/v1/resources.go) exactly, so a name that
 * NVIDIA's plugin accepts is accepted here and advertised under the same fully-qualified name. Errors
 * start with NVIDIA's words and the name as NVIDIA quotes it, then say what is wrong in ours.
 */
import { isDns1123Subdomain } from '../kube/names.js';
import type { Result } from '../result.js';

const RESOURCE_NAME_PREFIX = 'nvidia.com';
export const MAX_RESOURCE_NAME_LENGTH = 63;
/** Suffix NVIDIA appends when `renameByDefault` is set. */
export const SHARED_RENAME_SUFFIX = '.shared';

export type ResourceNameResult = Result<string, string>;

/**
 * `gpu` → `nvidia.com/gpu`. Like NVIDIA, the prefix is added to every name that does not already start
 * with `nvidia.com/`, so a name in another domain ends up with a `/` in its DNS part and is rejected.
 */
export function qualifyResourceName(raw: string): ResourceNameResult {
  const name = raw.startsWith(`${RESOURCE_NAME_PREFIX}/`) ? raw : `${RESOURCE_NAME_PREFIX}/${raw}`;
  if (name.length > MAX_RESOURCE_NAME_LENGTH) {
    return {
      ok: false,
      error: `fully-qualified resource name must be ${MAX_RESOURCE_NAME_LENGTH} characters or less: ${name} (${name.length} characters)`,
    };
  }
  const local = name.slice(RESOURCE_NAME_PREFIX.length + 1);
  if (!isDns1123Subdomain(local)) {
    return { ok: false, error: `incorrect format for resource name '${name}': ${nameRules(local)}` };
  }
  return { ok: true, value: name };
}

function nameRules(local: string): string {
  if (local === '') return `a name is needed after ${RESOURCE_NAME_PREFIX}/`;
  if (local.includes('/')) return `only names in the ${RESOURCE_NAME_PREFIX}/ domain are supported`;
  return `the part after ${RESOURCE_NAME_PREFIX}/ must be lower-case letters, digits, "-" and ".", starting and ending with a letter or digit`;
}
