/** Typo hints for unknown keys: the closest known key by optimal-string-alignment distance. */

/** Damerau-Levenshtein distance restricted to adjacent transpositions that are not edited again (OSA). */
export function osaDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate nearest to `input`, if it is near enough to be a typo: within 2 edits, or a third of the
 * longer word for long keys, and never a complete rewrite. A difference of case alone always matches.
 */
export function closestMatch(input: string, candidates: readonly string[]): string | undefined {
  const sameCase = candidates.find((c) => c.toLowerCase() === input.toLowerCase());
  if (sameCase !== undefined) return sameCase;
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = osaDistance(input.toLowerCase(), candidate.toLowerCase());
    const limit = Math.max(2, Math.floor(Math.max(input.length, candidate.length) / 3));
    if (distance > limit || distance >= Math.min(input.length, candidate.length)) continue;
    if (!best || distance < best.distance) best = { candidate, distance };
  }
  return best?.candidate;
}
