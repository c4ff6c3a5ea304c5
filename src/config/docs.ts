/**
 * The reference section of docs/configuration.md, generated from the schema's `.meta()` so the docs and
 * the validation cannot drift apart (docs.test.ts fails when the file is stale).
 */
import { readFile, writeFile } from 'node:fs/promises';
import {
  boundsText,
  choicesOf,
  type FieldInfo,
  type FieldVisit,
  fieldPathText,
  listFields,
  typeText,
} from './introspect.js';
import { configFileSchema } from './schema.js';
import { OVERRIDABLE_SETTINGS } from './settings.js';

const CONFIG_REFERENCE_BEGIN = '<!-- BEGIN GENERATED: config-reference -->';
const CONFIG_REFERENCE_END = '<!-- END GENERATED -->';
/** What to run after changing the schema. */
export const REGENERATE_COMMAND = 'npm run docs:config';

/** Markdown for every key of the file (a table per top-level key), then the flag/env table. */
export function renderConfigReference(): string {
  const fields = listFields(configFileSchema);
  const lines: string[] = [
    `<!-- Generated from src/config/schema.ts by \`${REGENERATE_COMMAND}\`. Do not edit by hand. -->`,
    '',
  ];
  const header = ['| Key | Type | Default | Allowed values | Description |', '|---|---|---|---|---|'];
  const topLevel = fields.filter((f) => f.path.length === 1);
  lines.push('### Top level', '', ...header, ...topLevel.map(row), '');
  for (const top of topLevel) {
    const nested = fields.filter((f) => f.path.length > 1 && f.path[0] === top.path[0]);
    if (nested.length === 0) continue;
    lines.push(`### \`${top.path[0]}\``, '', cell(describe(top.info)), '', ...header, ...nested.map(row), '');
  }
  lines.push('### Command-line flags and environment variables', '');
  lines.push(
    'A flag wins over its environment variable, which wins over the file. An empty variable counts as unset.',
    '',
  );
  lines.push('| Flag | Environment | Key |', '|---|---|---|');
  for (const s of OVERRIDABLE_SETTINGS) {
    const flags = [s.flag, ...s.aliases].map(code).join(', ');
    lines.push(`| ${flags} | ${s.env.map(code).join(', ')} | ${code(s.path.join('.'))} |`);
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

function row({ path, info }: FieldVisit): string {
  const allowed = choicesOf(info)?.map(code).join(', ') ?? boundsText(info) ?? '';
  return `| ${code(fieldPathText(path))} | ${cell(typeText(info))} | ${cell(defaultText(info))} | ${cell(allowed)} | ${cell(describe(info))} |`;
}

function defaultText(info: FieldInfo): string {
  if (info.doc.defaultText) return info.doc.defaultText;
  if (info.hasDefault && !isMapping(info.defaultValue)) return code(inline(info.defaultValue));
  if (info.optional || info.hasDefault) return '';
  return 'required';
}

function describe(info: FieldInfo): string {
  const parts = [info.doc.description ?? ''];
  if (info.doc.ignored) parts.push(`Accepted with a warning: ${info.doc.ignored}.`);
  if (info.doc.example) parts.push(`Example: ${code(info.doc.example)}.`);
  return parts.join(' ');
}

/** A value as it would be written in YAML flow style. */
function inline(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(inline).join(', ')}]`;
  return String(value);
}

function isMapping(value: unknown): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const code = (text: string): string => `\`${text}\``;

/** Table cells: one line, `|` escaped so it does not split the cell, `<…>` outside code not read as HTML. */
function cell(text: string): string {
  const oneLine = text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
  // Odd segments of a split on backticks are code spans.
  return oneLine
    .split('`')
    .map((segment, i) => (i % 2 === 1 ? segment : segment.replace(/</g, '&lt;')))
    .join('`');
}

/** The generated section currently in a markdown document, or undefined when the markers are missing. */
export function extractConfigReference(markdown: string): string | undefined {
  const begin = markdown.indexOf(CONFIG_REFERENCE_BEGIN);
  const end = markdown.indexOf(CONFIG_REFERENCE_END, begin);
  if (begin < 0 || end < 0) return undefined;
  return markdown.slice(begin + CONFIG_REFERENCE_BEGIN.length, end).replace(/^\n/, '');
}

/** Rewrites the generated section of the document at `path`; returns whether the file changed. */
export async function updateConfigDocs(path: string): Promise<boolean> {
  const markdown = await readFile(path, 'utf8');
  const begin = markdown.indexOf(CONFIG_REFERENCE_BEGIN);
  const end = markdown.indexOf(CONFIG_REFERENCE_END, begin);
  if (begin < 0 || end < 0) {
    throw new Error(`${path}: markers ${CONFIG_REFERENCE_BEGIN} … ${CONFIG_REFERENCE_END} not found`);
  }
  const updated = `${markdown.slice(0, begin + CONFIG_REFERENCE_BEGIN.length)}\n${renderConfigReference()}${markdown.slice(end)}`;
  if (updated === markdown) return false;
  await writeFile(path, updated);
  return true;
}
