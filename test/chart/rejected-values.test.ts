/**
 * Values the chart must refuse at install time, with Helm 3 and Helm 4: typos and wrong types through
 * values.schema.json, and the combinations its templates refuse. Each file under invalid/ names, in its
 * first line, the words the error must contain (Helm 3 and 4 word their schema errors differently).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { helmBinary } from '../../scripts/helm.mjs';
import { HELM_MAJORS, template } from './helm.js';

const INVALID_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'invalid');
const FILES = readdirSync(INVALID_DIR)
  .filter((name) => name.endsWith('.yaml'))
  .sort();

function expectedWords(file: string): string[] {
  const first = readFileSync(path.join(INVALID_DIR, file), 'utf8').split('\n')[0] ?? '';
  const match = /^# rejected, naming: (.+)$/.exec(first);
  if (!match) throw new Error(`${file}: the first line must be "# rejected, naming: <words>"`);
  return match[1]!.trim().split(/\s+/);
}

beforeAll(async () => {
  await Promise.all(HELM_MAJORS.map((major) => helmBinary(major)));
}, 300_000);

describe.each(FILES)('values file invalid/%s', (file) => {
  it.each(HELM_MAJORS)('is rejected by Helm %i, naming what is wrong', async (major) => {
    const result = await template(major, [path.join(INVALID_DIR, file)]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    for (const word of expectedWords(file)) expect(result.stderr).toContain(word);
  });
});
