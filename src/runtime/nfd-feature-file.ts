/**
 * GPU feature labels as a feature file of node-feature-discovery's `local` source (`--node-labels nfd`):
 * `key=value` lines in `<features.d>/vgpu-agent`, which nfd-worker turns into node labels. Written
 * atomically (a hidden temp file in the same directory, then rename), so nfd-worker never reads half
 * a file; NFD skips hidden files. Removed when the agent stops, as GFD removes its own.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LabelSink, NodeLabelMap } from '../plugin/node-label-publisher.js';

/** NFD's default directory for local feature files (nfd-worker's `-feature-file-dir`... features.d). */
export const DEFAULT_NFD_FEATURES_DIR = '/etc/kubernetes/node-feature-discovery/features.d';
export const NFD_FEATURE_FILE_NAME = 'vgpu-agent';

/** The file's text: a comment naming its writer, then the labels sorted by key. */
export function featureFileText(labels: NodeLabelMap): string {
  const lines = Object.keys(labels)
    .sort()
    .map((key) => `${key}=${labels[key]}`);
  return `# GPU feature labels written by vgpu-agent; rewritten on every change\n${lines.join('\n')}\n`;
}

export class NfdFeatureFile implements LabelSink {
  readonly file: string;
  private temps = 0;

  constructor(readonly directory: string) {
    this.file = path.join(directory, NFD_FEATURE_FILE_NAME);
  }

  get description(): string {
    return `NFD feature file ${this.file}`;
  }

  async publish(labels: NodeLabelMap): Promise<void> {
    await mkdir(this.directory, { recursive: true });
    const temp = path.join(this.directory, `.${NFD_FEATURE_FILE_NAME}.${process.pid}.${++this.temps}.tmp`);
    try {
      await writeFile(temp, featureFileText(labels), { mode: 0o644 });
      await rename(temp, this.file);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** The agent stops: its labels go with it (nfd-worker drops them on its next pass). */
  async close(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
