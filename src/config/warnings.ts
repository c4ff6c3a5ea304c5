/**
 * Keys accepted only so that NVIDIA files load unchanged, but without effect here (gpu-feature-discovery
 * options, `resources`, `mpsRoot`, an empty `imex`). Each one present gets a warning, never silence.
 * Which keys these are comes from the `ignored` text in the schema's `.meta()`.
 */
import { z } from 'zod';
import { formatPath } from './errors.js';
import { objectShape, unwrap } from './introspect.js';

export interface IgnoredKey {
  path: string;
  message: string;
}

export function ignoredKeys(root: z.ZodType, document: unknown): IgnoredKey[] {
  const found: IgnoredKey[] = [];
  const walk = (schema: z.ZodType, value: unknown, path: PropertyKey[]): void => {
    const base = unwrap(schema).base;
    if (base instanceof z.ZodArray && Array.isArray(value)) {
      value.forEach((item, index) => {
        walk(base.element as z.ZodType, item, [...path, index]);
      });
      return;
    }
    const shape = objectShape(base);
    if (!shape || value === null || typeof value !== 'object' || Array.isArray(value)) return;
    for (const [key, child] of Object.entries(shape)) {
      const childValue = (value as Record<string, unknown>)[key];
      if (childValue === undefined) continue;
      const ignored = unwrap(child).doc.ignored;
      if (ignored) found.push({ path: formatPath([...path, key]), message: ignored });
      else walk(child, childValue, [...path, key]);
    }
  };
  walk(root, document, []);
  return found;
}
