/**
 * The outcome of a step that can fail for reasons worth showing (a config file, a node's facts): one
 * shape everywhere, so a caller reads `value` or `error` whichever function it called. Exceptions stay
 * for what the caller cannot act on.
 */
export type Result<T, E = string[]> = { ok: true; value: T } | { ok: false; error: E };
