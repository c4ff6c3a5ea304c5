/** Wording shared by every config message, so file, flag and env errors read the same way. */

/** Renders a parsed YAML/JSON value for a message: strings quoted, containers named by their kind. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/** `a`, `a or b`, `a, b or c`: how the messages list the accepted values. */
export function oneOf(values: readonly unknown[]): string {
  const items = values.map(String);
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}
