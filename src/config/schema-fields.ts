/**
 * Field builders shared by the schema modules: documentation, NVIDIA's "missing key" messages, paths,
 * resource names and the `devices` selector.
 */
import { z } from 'zod';
import { describeValue } from './describe.js';
import { type DeviceSelection, parseDevices } from './devices.js';
import type { FieldDoc } from './introspect.js';
import { MAX_RESOURCE_NAME_LENGTH, qualifyResourceName } from './resource-name.js';

/** Typed `.meta()` argument, so every field documents itself the same way. */
export const doc = (fields: FieldDoc): FieldDoc => fields;

/** An error function that names a missing required key the way NVIDIA does, other problems left to the error map. */
export const whenMissing = (message: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? message : undefined),
});

export const absolutePath = () =>
  z.string().refine((path) => path.startsWith('/'), {
    error: (issue) => `must be an absolute path (got ${describeValue(issue.input)})`,
  });

export function resourceName(missingMessage?: string) {
  return z.string(missingMessage ? whenMissing(missingMessage) : undefined).transform((raw, ctx) => {
    const result = qualifyResourceName(raw);
    if (result.ok) return result.value;
    ctx.issues.push({ code: 'custom', message: result.error, input: raw });
    return z.NEVER;
  });
}

export const RESOURCE_NAME_TYPE = 'resource name';
export const RESOURCE_NAME_RULES = `\`nvidia.com/\` is prepended unless the name starts with it; at most ${MAX_RESOURCE_NAME_LENGTH} characters in all.`;

export const devicesSchema = z
  .unknown()
  .transform((value, ctx): DeviceSelection => {
    const result = parseDevices(value);
    if (result.ok) return result.value;
    for (const problem of result.error) {
      const path = problem.index === undefined ? [] : [problem.index];
      ctx.issues.push({ code: 'custom', message: problem.message, input: value, path });
    }
    return z.NEVER;
  })
  .prefault('all')
  .meta(
    doc({
      description:
        'Which GPUs this entry shares: `all`, the first N GPUs (a count), or a list of GPU indices (`0`), ' +
        'MIG indices (`"0:1"`) and UUIDs (`GPU-…`, `MIG-…`). NVIDIA parses this field and then ignores it; ' +
        'vgpu-agent honours it.',
      type: '"all", integer or list',
      allowed:
        '`all`, integer > 0, list of index / `"i:j"` / `GPU-<uuid>` / `MIG-<uuid>` / `MIG-GPU-<uuid>/<gi>/<ci>`',
      example: '[0, "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c"]',
    }),
  );
