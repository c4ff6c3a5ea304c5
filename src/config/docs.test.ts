import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { extractConfigReference, REGENERATE_COMMAND, renderConfigReference } from './docs.js';
import { fieldPathText, listFields } from './introspect.js';
import { configFileSchema } from './schema.js';

const DOCS = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));

describe('docs/configuration.md', () => {
  test('its generated reference matches the schema', async () => {
    const section = extractConfigReference(await readFile(DOCS, 'utf8'));
    expect(section, 'the markers of the generated section are missing').toBeDefined();
    expect(section, `docs/configuration.md is stale: run \`${REGENERATE_COMMAND}\``).toBe(
      renderConfigReference(),
    );
  });

  test('every key of the schema is documented', () => {
    const undocumented = listFields(configFileSchema)
      .filter((f) => !f.info.doc.description)
      .map((f) => fieldPathText(f.path));
    expect(undocumented).toEqual([]);
  });

  test('the reference has a row for every key, with type and default', () => {
    const reference = renderConfigReference();
    expect(reference).toContain(
      '| `sharing.timeSlicing.resources[].replicas` | integer | required | >= 2, &lt;= 32768 | Devices advertised per GPU.',
    );
    expect(reference).toContain('| `flags.migStrategy` | string | `none` | `none`, `single`, `mixed` |');
    expect(reference).toContain(
      '| `health.disabledXids` | list of integers | `[13, 31, 43, 45, 68, 109]` | >= 0 |',
    );
    for (const field of listFields(configFileSchema)) {
      expect(reference).toContain(`| \`${fieldPathText(field.path)}\` |`);
    }
  });
});
