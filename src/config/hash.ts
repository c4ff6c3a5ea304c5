/** A short fingerprint of the effective configuration, to tell whether a reload changed anything. */
import { createHash } from 'node:crypto';
import type { EffectiveConfig } from './schema.js';

/** JSON with object keys sorted at every level, so equal configs give equal text whatever the key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

/** First 12 hex digits of the SHA-256 of the canonical JSON. */
export function configHash(effective: EffectiveConfig): string {
  return createHash('sha256').update(canonicalJson(effective)).digest('hex').slice(0, 12);
}
