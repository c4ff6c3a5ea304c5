/**
 * Config problems as values: every one names the file, the path in the document and what was expected,
 * and prints as one line such as
 * `config.yaml: sharing.timeSlicing.resources[0].replicas: number of replicas must be >= 2 (got 1)`.
 */
import type { z } from 'zod';
import { closestMatch } from './did-you-mean.js';
import { fieldPathText, knownKeysAt, listFields } from './introspect.js';

export interface ConfigIssue {
  /** The file (or other origin) the text came from, as given to the loader. */
  source: string;
  /** Path in the document, e.g. `flags.plugin.deviceListStrategy[1]`; empty for the document itself. */
  path: string;
  message: string;
  /** 1-based position in the text, when known. */
  line?: number;
  column?: number;
}

/**
 * One line per issue. Issues with a path print `source: path: message` (the path locates them); issues
 * without one, such as YAML syntax errors, print `source:line:column: message` the way compilers do.
 */
export function formatIssue(issue: ConfigIssue): string {
  if (issue.path) return `${issue.source}: ${issue.path}: ${issue.message}`;
  const at = issue.line === undefined ? '' : `:${issue.line}:${issue.column ?? 1}`;
  return `${issue.source}${at}: ${issue.message}`;
}

/** `['a', 'b', 0, 'c']` → `a.b[0].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text ? `.${String(segment)}` : String(segment);
  }
  return text;
}

export type Locate = (path: readonly PropertyKey[]) => { line: number; column: number } | undefined;

/** Turns zod issues into config issues: one per unknown key, with a did-you-mean hint from the schema. */
export function issuesFromZod(
  issues: readonly z.core.$ZodIssue[],
  source: string,
  root: z.ZodType,
  locate: Locate = () => undefined,
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const make = (path: readonly PropertyKey[], message: string): ConfigIssue => ({
    source,
    path: formatPath(path),
    message,
    ...locate(path),
  });
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push(make([...issue.path, key], unknownKeyMessage(root, issue.path, key)));
    } else {
      out.push(make(issue.path, issue.message));
    }
  }
  return out;
}

function unknownKeyMessage(root: z.ZodType, parent: readonly PropertyKey[], key: string): string {
  const known = knownKeysAt(root, parent);
  const near = closestMatch(key, known);
  if (near !== undefined && near.toLowerCase() === key.toLowerCase())
    return `unknown key (did you mean "${near}"?)`;
  // A key that exists, but elsewhere (e.g. deviceListStrategy directly under flags instead of flags.plugin).
  // Among several, the one nearest to where the key was written.
  const elsewhere = listFields(root)
    .filter((f) => f.path[f.path.length - 1] === key)
    .sort((a, b) => sharedPrefix(b.path, parent) - sharedPrefix(a.path, parent))[0];
  if (elsewhere) return `unknown key (did you mean "${fieldPathText(elsewhere.path)}"?)`;
  if (near !== undefined) return `unknown key (did you mean "${near}"?)`;
  return known.length > 0 ? `unknown key (expected one of: ${known.join(', ')})` : 'unknown key';
}

function sharedPrefix(fieldPath: readonly string[], parent: readonly PropertyKey[]): number {
  const segments = fieldPath.filter((s) => s !== '[]');
  const named = parent.filter((s) => typeof s === 'string');
  let n = 0;
  while (n < segments.length && n < named.length && segments[n] === named[n]) n++;
  return n;
}

/** Lines cut down for a log record: a rejected config can hold thousands of problems or echo a huge value. */
export interface BoundedLines {
  /** the first lines, each at most `maxLength` characters */
  shown: string[];
  /** how many lines were left out */
  omitted: number;
}

const LOGGED_LINES_MAX = 10;
const LOGGED_LINE_MAX_LENGTH = 300;

export function boundLines(
  lines: readonly string[],
  { maxLines = LOGGED_LINES_MAX, maxLength = LOGGED_LINE_MAX_LENGTH } = {},
): BoundedLines {
  const shown = lines.slice(0, maxLines).map((line) => boundLine(line, maxLength));
  return { shown, omitted: lines.length - shown.length };
}

/** `line`, or its first `maxLength` characters and how many more there were. */
function boundLine(line: string, maxLength = LOGGED_LINE_MAX_LENGTH): string {
  if (line.length <= maxLength) return line;
  return `${line.slice(0, maxLength)}… (${line.length - maxLength} more characters)`;
}
