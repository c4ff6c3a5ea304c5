/**
 * Reads /metrics as Prometheus does: over HTTP, parsing the text exposition format (names, label
 * values with their escapes, values), so tests assert what a scraper would store.
 */

export interface ScrapedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;

export function parseExposition(text: string): ScrapedSample[] {
  const samples: ScrapedSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(LABEL)) {
      labels[key!] = raw!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

export async function scrape(port: number): Promise<ScrapedSample[]> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return parseExposition(await response.text());
}

/** The samples of `name` whose labels include `match`. */
export function samplesOf(
  samples: readonly ScrapedSample[],
  name: string,
  match: Record<string, string | number> = {},
): ScrapedSample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === String(v)),
  );
}

/** The value of the one sample of `name` matching `match`; undefined when none; throws when several. */
export function valueOf(
  samples: readonly ScrapedSample[],
  name: string,
  match: Record<string, string | number> = {},
): number | undefined {
  const found = samplesOf(samples, name, match);
  if (found.length > 1) throw new Error(`${name}: ${found.length} samples match ${JSON.stringify(match)}`);
  return found[0]?.value;
}
