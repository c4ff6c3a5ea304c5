/**
 * Declarative command-line options: every flag has an environment variable, and the flag wins over
 * the variable, which wins over the default. The same table renders --help, so they cannot drift.
 */
import { parseArgs } from 'node:util';
import { errorMessage } from '../errors.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface OptionSpec {
  /** long flag name without dashes, e.g. `nvml-library` */
  flag: string;
  env?: string;
  type: 'string' | 'boolean';
  description: string;
  default?: string | boolean;
  choices?: readonly string[];
  /** for string options given as numbers */
  integer?: boolean;
  /** other spellings of the flag (NVIDIA's), merged into this one */
  aliases?: readonly string[];
  /** may be repeated; the value is then a list */
  multiple?: boolean;
  /** environment variables resolved elsewhere (shown in --help only) */
  envHelp?: string;
}

/** `--output text|json`: a report for people, or for scripts. */
export function outputOption(description: string): OptionSpec {
  return { flag: 'output', type: 'string', default: 'text', choices: ['text', 'json'], description };
}

export type OptionValue = string | boolean | string[] | undefined;
export type OptionValues = Record<string, OptionValue>;

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

function fromEnv(spec: OptionSpec, env: NodeJS.ProcessEnv): string | boolean | undefined {
  const raw = spec.env ? env[spec.env] : undefined;
  if (raw === undefined || raw === '') return undefined;
  if (spec.type === 'string') return raw;
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new UsageError(`${spec.env}=${raw}: expected true or false`);
}

function check(spec: OptionSpec, value: OptionValue, origin: string): void {
  if (typeof value !== 'string') return;
  if (spec.choices && !spec.choices.includes(value)) {
    throw new UsageError(`${origin}: "${value}" is not one of ${spec.choices.join(', ')}`);
  }
  if (spec.integer && !/^\d+$/.test(value))
    throw new UsageError(`${origin}: "${value}" is not a whole number`);
}

export interface ParsedCommandLine {
  values: OptionValues;
  positionals: string[];
  /** flags given on the command line or through their variable (not defaults) */
  explicit: Set<string>;
}

export function parseCommandLine(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  specs: readonly OptionSpec[],
): ParsedCommandLine {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries([
        ...specs.flatMap((s) =>
          [s.flag, ...(s.aliases ?? [])].map(
            (flag) => [flag, { type: s.type, multiple: s.multiple ?? false }] as const,
          ),
        ),
        ['help', { type: 'boolean', multiple: false }] as const,
      ]),
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(errorMessage(err).replace(/\. To specify.*$/s, ''));
  }
  const values: OptionValues = { help: parsed.values.help as boolean | undefined };
  const explicit = new Set<string>();
  for (const spec of specs) {
    const given = [spec.flag, ...(spec.aliases ?? [])].map((f) => parsed.values[f] as OptionValue);
    const fromFlag = spec.multiple
      ? given.flatMap((v) => (Array.isArray(v) ? v : [])).join(',') || undefined
      : given.find((v) => v !== undefined);
    const fromVariable = fromEnv(spec, env);
    check(spec, fromFlag, `--${spec.flag}`);
    check(spec, fromVariable, spec.env ?? spec.flag);
    const value = fromFlag ?? fromVariable;
    if (value !== undefined) explicit.add(spec.flag);
    values[spec.flag] = value ?? spec.default;
  }
  return { values, positionals: parsed.positionals, explicit };
}

export function renderOptionsHelp(specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => {
    const left = `  --${s.flag}${s.type === 'string' ? ' <value>' : ''}${s.aliases?.length ? ` (or --${s.aliases.join(', --')})` : ''}`;
    const extras = [
      s.env ? `env ${s.env}` : s.envHelp ? `env ${s.envHelp}` : undefined,
      s.choices ? `one of ${s.choices.join('|')}` : undefined,
      s.default !== undefined && s.default !== '' ? `default ${s.default}` : undefined,
    ].filter(Boolean);
    return `${left.padEnd(36)} ${s.description}${extras.length ? ` (${extras.join('; ')})` : ''}`;
  });
  return rows.join('\n');
}
