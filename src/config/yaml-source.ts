/**
 * Config text to plain data. NVIDIA reads its file with sigs.k8s.io/yaml (go-yaml v2, YAML 1.1), so the
 * YAML 1.1 booleans (yes/no/on/off/y/n) are booleans here too; everything else is YAML 1.2, which also
 * parses JSON. The yaml package's YAML 1.1 schema is not used wholesale: it would read an unquoted MIG
 * index `1:0` as the base-60 number 60, which go-yaml v2 does not (it reads the string "1:0").
 */
import { type Document, isNode, LineCounter, parseDocument, type ScalarTag } from 'yaml';
import { errorMessage } from '../errors.js';
import type { Result } from '../result.js';

const YAML11_TRUE = /^(?:y|Y|yes|Yes|YES|on|On|ON)$/;
const yaml11Booleans: ScalarTag = {
  tag: 'tag:yaml.org,2002:bool',
  default: true,
  test: /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/,
  resolve: (text) => YAML11_TRUE.test(text),
};

export interface Position {
  line: number;
  column: number;
}

export interface YamlMessage {
  message: string;
  position?: Position;
}

export interface YamlDocument {
  /** the document as plain data */
  data: unknown;
  warnings: YamlMessage[];
  /** where a path of the data stands in the text */
  locate: (path: readonly PropertyKey[]) => Position | undefined;
}

export type YamlResult = Result<YamlDocument, YamlMessage[]>;

export function parseYaml(text: string): YamlResult {
  const lineCounter = new LineCounter();
  // go-yaml v2 also resolves `<<` merge keys, which people use to share settings between named configs.
  const doc = parseDocument(text, {
    lineCounter,
    customTags: [yaml11Booleans],
    merge: true,
    prettyErrors: false,
  });
  const at = (offset: number | undefined): Position | undefined => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (doc.errors.length > 0) {
    return { ok: false, error: doc.errors.map((e) => ({ message: e.message, position: at(e.pos[0]) })) };
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (error) {
    // e.g. an alias to an anchor that does not exist: found only when the document is converted.
    return { ok: false, error: [{ message: errorMessage(error) }] };
  }
  return {
    ok: true,
    value: {
      data,
      warnings: doc.warnings.map((w) => ({ message: w.message, position: at(w.pos[0]) })),
      locate: (path) => at(offsetOf(doc, path)),
    },
  };
}

/** Start of the node at `path`, or of its nearest ancestor when the key is missing. */
function offsetOf(doc: Document, path: readonly PropertyKey[]): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return node.range[0];
  }
  return undefined;
}
