/**
 * Reading the config schema as data: which keys exist at a path, a field's default, allowed values and
 * documentation. Did-you-mean hints, load warnings, CLI help and the reference docs all come from here,
 * so none of them keeps its own list of keys.
 */
import { z } from 'zod';

/** Documentation attached to every field with `.meta()`. A type alias (not an interface) so it fits zod's `GlobalMeta`. */
export type FieldDoc = {
  description: string;
  /** A value or YAML fragment shown in the reference. */
  example?: string;
  /** Accepted for compatibility but without effect: the text of the warning given at load. */
  ignored?: string;
  /** Type shown in the reference when the schema is a custom parser. */
  type?: string;
  /** Default shown in the reference when it is computed rather than a constant. */
  defaultText?: string;
  /** Accepted values of a custom parser (an enum lists its own). */
  choices?: readonly string[];
  /** Constraint text shown in the reference, e.g. ">= 2". */
  allowed?: string;
};

export interface FieldInfo {
  /** The schema under the optional/default/transform wrappers. */
  base: z.ZodType;
  optional: boolean;
  hasDefault: boolean;
  defaultValue: unknown;
  doc: Partial<FieldDoc>;
}

/** Peels the wrappers that do not change what a user writes, merging their `.meta()` (outer wins). */
export function unwrap(schema: z.ZodType): FieldInfo {
  const info: FieldInfo = {
    base: schema,
    optional: false,
    hasDefault: false,
    defaultValue: undefined,
    doc: {},
  };
  let current: z.ZodType = schema;
  for (;;) {
    const meta = current.meta() as Partial<FieldDoc> | undefined;
    if (meta) info.doc = { ...meta, ...info.doc };
    if (current instanceof z.ZodDefault || current instanceof z.ZodPrefault) {
      if (!info.hasDefault) info.defaultValue = current.def.defaultValue;
      info.hasDefault = true;
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodOptional) {
      info.optional = true;
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodNullable || current instanceof z.ZodReadonly) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      // `x.transform(f)` is pipe(x, transform): the user writes x. `z.preprocess(f, x)` is pipe(transform, x).
      current = (current.in instanceof z.ZodTransform ? current.out : current.in) as z.ZodType;
    } else {
      info.base = current;
      return info;
    }
  }
}

export function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  const base = unwrap(schema).base;
  return base instanceof z.ZodObject ? (base.shape as Record<string, z.ZodType>) : undefined;
}

/** The schema that validates the value at `path` in a document (numbers index lists), if there is one. */
export function schemaAt(root: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = root;
  for (const segment of path) {
    if (!current) return undefined;
    const base: z.ZodType = unwrap(current).base;
    if (base instanceof z.ZodObject && typeof segment === 'string') {
      current = (base.shape as Record<string, z.ZodType>)[segment];
    } else if (base instanceof z.ZodArray && typeof segment === 'number') {
      current = base.element as z.ZodType;
    } else {
      return undefined;
    }
  }
  return current;
}

/** Keys accepted by the mapping at `path`, in schema order. */
export function knownKeysAt(root: z.ZodType, path: readonly PropertyKey[]): string[] {
  const schema = schemaAt(root, path);
  const shape = schema && objectShape(schema);
  return shape ? Object.keys(shape) : [];
}

export interface FieldVisit {
  /** Key path; `[]` marks "every element of the list". */
  path: string[];
  info: FieldInfo;
}

/** Every key of the schema, depth first in schema order, lists of mappings entered as `name[]`. */
export function listFields(root: z.ZodType): FieldVisit[] {
  const out: FieldVisit[] = [];
  const visit = (schema: z.ZodType, path: string[]): void => {
    const shape = objectShape(schema);
    if (!shape) return;
    for (const [key, child] of Object.entries(shape)) {
      const info = unwrap(child);
      const childPath = [...path, key];
      out.push({ path: childPath, info });
      if (info.base instanceof z.ZodArray) visit(info.base.element as z.ZodType, [...childPath, '[]']);
      else visit(child, childPath);
    }
  };
  visit(root, []);
  return out;
}

/** `['sharing', 'timeSlicing', 'resources', '[]', 'name']` → `sharing.timeSlicing.resources[].name`. */
export function fieldPathText(path: readonly string[]): string {
  return path.reduce(
    (text, segment) => (segment === '[]' ? `${text}[]` : text ? `${text}.${segment}` : segment),
    '',
  );
}

/** Accepted values of an enum, literal or documented custom parser; undefined for free-form fields. */
export function choicesOf(info: FieldInfo): readonly string[] | undefined {
  if (info.doc.choices) return info.doc.choices;
  if (info.base instanceof z.ZodEnum) return info.base.options.map(String);
  if (info.base instanceof z.ZodLiteral) return [...info.base.values].map(String);
  return undefined;
}

/** Human name of a field's type for the reference and for CLI help. */
export function typeText(info: FieldInfo): string {
  if (info.doc.type) return info.doc.type;
  return baseTypeText(info.base);
}

function baseTypeText(base: z.ZodType): string {
  if (base instanceof z.ZodNumber) return base.format === 'safeint' ? 'integer' : 'number';
  if (base instanceof z.ZodString || base instanceof z.ZodEnum) return 'string';
  if (base instanceof z.ZodBoolean) return 'boolean';
  if (base instanceof z.ZodObject) return 'mapping';
  if (base instanceof z.ZodNever) return 'not supported';
  if (base instanceof z.ZodArray) return `list of ${baseTypeText(unwrap(base.element as z.ZodType).base)}s`;
  return 'any';
}

/** Numeric bounds of a number schema as text: `>= 2`, `> 0`. */
export function boundsText(info: FieldInfo): string | undefined {
  if (info.doc.allowed) return info.doc.allowed;
  const base = info.base instanceof z.ZodArray ? unwrap(info.base.element as z.ZodType).base : info.base;
  if (!(base instanceof z.ZodNumber)) return undefined;
  const parts: string[] = [];
  for (const check of base.def.checks ?? []) {
    const def = check._zod.def as { check: string; value?: unknown; inclusive?: boolean };
    if (def.check === 'greater_than') parts.push(`${def.inclusive ? '>=' : '>'} ${String(def.value)}`);
    if (def.check === 'less_than') parts.push(`${def.inclusive ? '<=' : '<'} ${String(def.value)}`);
  }
  return parts.length > 0 ? parts.join(', ') : undefined;
}
