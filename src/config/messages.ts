/**
 * Zod's default messages ("Invalid input: expected string, received number") replaced by ones that say
 * what was expected and what was found, in the words the rest of the config package uses. Passed per
 * parse so no other module's zod messages change.
 */
import { z } from 'zod';
import { describeValue, oneOf } from './describe.js';
import { goTypeError } from './nvidia-wording.js';

const NOUNS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};

export const configErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = isIntegerSchema(issue.inst) ? 'an integer' : (NOUNS[issue.expected] ?? issue.expected);
      if (issue.input === undefined) return `required key is missing (expected ${expected})`;
      return `expected ${expected} (got ${describeValue(issue.input)})`;
    }
    case 'invalid_value':
      return `expected ${oneOf(issue.values)} (got ${describeValue(issue.input)})`;
    case 'too_small':
      if (issue.origin === 'array' || issue.origin === 'string') return 'must not be empty';
      return `must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum} (got ${describeValue(issue.input)})`;
    case 'too_big':
      if (issue.origin === 'array' || issue.origin === 'string')
        return `must have at most ${issue.maximum} items`;
      return `must be ${issue.inclusive ? '<=' : '<'} ${issue.maximum} (got ${describeValue(issue.input)})`;
    case 'invalid_union':
      return `does not match any accepted form (got ${describeValue(issue.input)})`;
    default:
      return undefined;
  }
};

/**
 * For config files: a value of the wrong type at a key NVIDIA's plugin also reads gets Go's words first,
 * as NVIDIA prints them, then ours: `json: cannot unmarshal string into Go struct field
 * Flags.flags.failOnInitError of type bool (expected true or false, got "maybe")`.
 */
export const configFileErrorMap: z.core.$ZodErrorMap = (issue) => {
  const ours = configErrorMap(issue);
  if (issue.code !== 'invalid_type' || typeof ours !== 'string') return ours;
  const go = goTypeError(issue.path ?? [], issue.input);
  return go === undefined ? ours : `${go} (${ours.replace(/ \(got (.*)\)$/, ', got $1')})`;
};

/** `z.int()` reports a non-number as "expected number"; the schema tells us an integer was meant. */
function isIntegerSchema(inst: unknown): boolean {
  return inst instanceof z.ZodNumber && inst.format === 'safeint';
}
