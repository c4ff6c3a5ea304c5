/**
 * The NFD feature file is replaced atomically: a reader polling it while the labels are rewritten over
 * and over (as nfd-worker reads it at any moment) only ever sees a whole file, and nothing else is left
 * in the directory; closing removes it.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { featureFileText, NfdFeatureFile } from '../../src/runtime/nfd-feature-file.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A label set of about 40 KiB, different for each n. */
const labelsOf = (n: number) =>
  Object.fromEntries(Array.from({ length: 800 }, (_, i) => [`example.com/label-${i}`, `value-${n}-${i}`]));

it('a reader never sees a partial file while it is rewritten, and close removes it', async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nfd-file-'));
  const sink = new NfdFeatureFile(path.join(dir, 'features.d'));
  await sink.publish(labelsOf(0));
  const whole = new Set([featureFileText(labelsOf(0))]);
  let writing = true;
  const reads: string[] = [];
  const reader = (async () => {
    while (writing) reads.push(await readFile(sink.file, 'utf8'));
  })();
  for (let n = 1; n <= 200; n++) {
    whole.add(featureFileText(labelsOf(n)));
    await sink.publish(labelsOf(n));
  }
  writing = false;
  await reader;
  expect(reads.length).toBeGreaterThan(0);
  expect(reads.filter((text) => !whole.has(text)).map((text) => text.length)).toEqual([]);
  expect(await readdir(sink.directory)).toEqual(['vgpu-agent']);
  await sink.close();
  expect(await readdir(sink.directory)).toEqual([]);
});
