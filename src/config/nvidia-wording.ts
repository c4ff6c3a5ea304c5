/**
 * NVIDIA's words for the config rejections its device plugin shares with vgpu-agent. Our messages start
 * with them (people search for what NVIDIA prints) and add what was expected after. Facts, not code,
 * from k8s-device-plugin v0.20 (`api/config/v1`, `validateFlags` in cmd/nvidia-device-plugin/main.go),
 * which reads the file with sigs.k8s.io/yaml (YAML → JSON, then Go's encoding/json) and parses
 * durations with Go's time.ParseDuration.
 */

/** A setting NVIDIA checks against a fixed list, and how it words a value outside that list. */
export interface NvidiaChoice {
  accepted: readonly string[];
  rejection: (value: string) => string;
}

export const NVIDIA_CHOICES = {
  migStrategy: {
    accepted: ['none', 'single', 'mixed'],
    rejection: (value) => `unknown MIG strategy: ${value}`,
  },
  deviceIDStrategy: {
    accepted: ['uuid', 'index'],
    rejection: (value) => `invalid --device-id-strategy option: ${value}`,
  },
  sharedDevicesAllocationPolicy: {
    accepted: ['distributed', 'packed'],
    rejection: (value) => `invalid --shared-devices-allocation-policy option: ${value}`,
  },
  deviceDiscoveryStrategy: {
    // No colon in NVIDIA's text for this one.
    accepted: ['auto', 'nvml', 'tegra'],
    rejection: (value) => `invalid --device-discovery-strategy option ${value}`,
  },
} as const satisfies Record<string, NvidiaChoice>;

/** `failOnInitError` → what Go calls the setting's type and the struct holding it. */
interface GoField {
  /** encoding/json names the innermost struct being decoded; empty for the document itself */
  struct: string;
  /** the JSON path encoding/json reports (custom decoders hide what lies below them) */
  field: string;
  type: string;
  /** sigs.k8s.io/yaml turns YAML numbers and booleans into text for string fields, except below a custom decoder */
  scalarsAsText?: boolean;
}

const flag = (name: string, type: string): [string, GoField] => [
  `flags.${name}`,
  { struct: 'Flags', field: `flags.${name}`, type },
];
const under = (struct: string, prefix: string, type: string) => (name: string) =>
  [`${prefix}.${name}`, { struct, field: `${prefix}.${name}`, type }] as [string, GoField];
// Everything under sharing.timeSlicing goes through NVIDIA's own decoder, whose errors encoding/json
// reports at the key that called it.
const timeSliced = (type: string): GoField => ({
  struct: 'Sharing',
  field: 'sharing.timeSlicing',
  type,
  scalarsAsText: false,
});

/** Paths as `formatPath` writes them, with `[]` for any list index. */
const GO_FIELDS = new Map<string, GoField>([
  ['', { struct: '', field: '', type: 'v1.Config' }],
  ['version', { struct: 'Config', field: 'version', type: 'string' }],
  ['flags', { struct: 'Config', field: 'flags', type: 'v1.Flags' }],
  ['resources', { struct: 'Config', field: 'resources', type: 'v1.Resources' }],
  ['sharing', { struct: 'Config', field: 'sharing', type: 'v1.Sharing' }],
  ['imex', { struct: 'Config', field: 'imex', type: 'v1.Imex' }],
  ...['failOnInitError', 'gdrcopyEnabled', 'gdsEnabled', 'mofedEnabled', 'useNodeFeatureAPI'].map((n) =>
    flag(n, 'bool'),
  ),
  ...['migStrategy', 'mpsRoot', 'nvidiaDriverRoot', 'nvidiaDevRoot', 'deviceDiscoveryStrategy'].map((n) =>
    flag(n, 'string'),
  ),
  flag('plugin', 'v1.PluginCommandLineFlags'),
  flag('gfd', 'v1.GFDCommandLineFlags'),
  under('PluginCommandLineFlags', 'flags.plugin', 'bool')('passDeviceSpecs'),
  ...[
    'deviceIDStrategy',
    'cdiAnnotationPrefix',
    'nvidiaCTKPath',
    'containerDriverRoot',
    'sharedDevicesAllocationPolicy',
  ].map(under('PluginCommandLineFlags', 'flags.plugin', 'string')),
  ...['oneshot', 'noTimestamp'].map(under('GFDCommandLineFlags', 'flags.gfd', 'bool')),
  ...['outputFile', 'machineTypeFile'].map(under('GFDCommandLineFlags', 'flags.gfd', 'string')),
  ['resources.gpus', { struct: 'Resources', field: 'resources.gpus', type: '[]v1.Resource' }],
  ['resources.mig', { struct: 'Resources', field: 'resources.mig', type: '[]v1.Resource' }],
  ['imex.channelIDs', { struct: 'Imex', field: 'imex.channelIDs', type: '[]int' }],
  ['imex.channelIDs[]', { struct: 'Imex', field: 'imex.channelIDs', type: 'int' }],
  ['imex.required', { struct: 'Imex', field: 'imex.required', type: 'bool' }],
  ['sharing.timeSlicing', timeSliced('map[string]json.RawMessage')],
  ['sharing.timeSlicing.renameByDefault', timeSliced('bool')],
  ['sharing.timeSlicing.failRequestsGreaterThanOne', timeSliced('bool')],
  ['sharing.timeSlicing.resources', timeSliced('[]v1.ReplicatedResource')],
  ['sharing.timeSlicing.resources[]', timeSliced('map[string]json.RawMessage')],
  ['sharing.timeSlicing.resources[].name', timeSliced('string')],
  ['sharing.timeSlicing.resources[].rename', timeSliced('string')],
  ['sharing.timeSlicing.resources[].replicas', timeSliced('int')],
]);

const INT64_MAX = 2n ** 63n - 1n;

/**
 * What Go's encoding/json says when `value` at `path` does not fit NVIDIA's Go type, e.g.
 * `json: cannot unmarshal string into Go struct field Flags.flags.failOnInitError of type bool`;
 * undefined when NVIDIA has no such field or accepts the value (sigs.k8s.io/yaml turns YAML numbers and
 * booleans into strings for string fields, and null is "not set").
 */
export function goTypeError(path: readonly PropertyKey[], value: unknown): string | undefined {
  const field = GO_FIELDS.get(pathPattern(path));
  if (!field || value === null || value === undefined) return undefined;
  const kind = jsonKind(value, field);
  if (kind === undefined) return undefined;
  const into = field.struct ? `Go struct field ${field.struct}.${field.field}` : 'Go value';
  return `json: cannot unmarshal ${kind} into ${into} of type ${field.type}`;
}

/** encoding/json's name for the JSON value, or undefined when it decodes into the field fine. */
function jsonKind(value: unknown, { type, scalarsAsText = true }: GoField): string | undefined {
  const isList = type.startsWith('[]');
  const isMapping = type.startsWith('map[') || type.startsWith('v1.');
  if (Array.isArray(value)) return isList ? undefined : 'array';
  if (typeof value === 'object') return isMapping ? undefined : 'object';
  if (typeof value === 'string') return type === 'string' ? undefined : 'string';
  if (type === 'string' && scalarsAsText) return undefined;
  if (typeof value === 'boolean') return type === 'bool' ? undefined : 'bool';
  if (typeof value === 'number') {
    if (type !== 'int') return 'number';
    return fitsInt64(value) ? undefined : `number ${JSON.stringify(value)}`;
  }
  return undefined;
}

function fitsInt64(value: number): boolean {
  return Number.isInteger(value) && BigInt(value) <= INT64_MAX && BigInt(value) >= -INT64_MAX - 1n;
}

/** `['sharing', 'timeSlicing', 'resources', 0, 'name']` → `sharing.timeSlicing.resources[].name`. */
function pathPattern(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += '[]';
    else text += text ? `.${String(segment)}` : String(segment);
  }
  return text;
}

/** `invalid deviceListStrategy: <the value as JSON>`: NVIDIA's words for a value neither a string nor a list. */
export function invalidDeviceListStrategy(value: unknown): string {
  return `invalid deviceListStrategy: ${JSON.stringify(value) ?? String(value)}`;
}

// Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or "0".
const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5
  μs: 1_000n, // U+03BC
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const OVERFLOW = 2n ** 63n;

/** Go's error for a duration string time.ParseDuration refuses (e.g. `time: missing unit in duration "5"`). */
export function goDurationError(text: string): string | undefined {
  const invalid = `time: invalid duration ${goQuote(text)}`;
  let rest = text.startsWith('-') || text.startsWith('+') ? text.slice(1) : text;
  if (rest === '0') return undefined;
  if (rest === '') return invalid;
  let total = 0n;
  while (rest !== '') {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest)!;
    const [digits, whole = '', fraction] = number;
    if (digits === '' || (whole === '' && !fraction)) return invalid;
    if (BigInt(whole || '0') > OVERFLOW) return invalid;
    rest = rest.slice(digits.length);
    const unit = /^[^.0-9]*/.exec(rest)![0];
    if (unit === '') return `time: missing unit in duration ${goQuote(text)}`;
    const scale = DURATION_UNITS[unit];
    if (scale === undefined) return `time: unknown unit ${goQuote(unit)} in duration ${goQuote(text)}`;
    rest = rest.slice(unit.length);
    total += BigInt(whole || '0') * scale;
    if (fraction) total += BigInt(Math.trunc(Number(`0.${fraction}`) * Number(scale)));
    if (total > OVERFLOW) return invalid;
  }
  return !text.startsWith('-') && total > OVERFLOW - 1n ? invalid : undefined;
}

/** Go's time package quoting: `"` around, `"` and `\` escaped, bytes outside printable ASCII as \xNN. */
function goQuote(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code < 0x20 || code >= 0x80) {
      for (const byte of Buffer.from(char, 'utf8')) out += `\\x${byte.toString(16).padStart(2, '0')}`;
    } else {
      out += char === '"' || char === '\\' ? `\\${char}` : char;
    }
  }
  return `${out}"`;
}

/** A key written with no value that NVIDIA's plugin does not read as "not set". */
export interface RejectedNull {
  path: (string | number)[];
  message: string;
}

const NO_VALUE = 'the key has no value';
// NVIDIA's time-slicing decoder reads these keys itself: null decodes as the empty value (an empty
// string, 0), which it then rejects. Elsewhere encoding/json leaves a null key unset.
const TIME_SLICED_NULLS: Record<string, string> = {
  name: `incorrect format for resource name 'nvidia.com/': ${NO_VALUE} (write a resource name such as gpu)`,
  rename: `incorrect format for resource name 'nvidia.com/': ${NO_VALUE} (write a name, or remove the key)`,
  devices: `devices set as '' but the only valid string input is 'all': ${NO_VALUE} (write "all", a count or a list, or remove the key)`,
  replicas: `number of replicas must be >= 2: ${NO_VALUE}`,
};

/** The null keys of `document` that NVIDIA rejects, each with NVIDIA's words first. */
export function nullsNvidiaRejects(document: unknown): RejectedNull[] {
  const sharing = isMapping(document) ? document.sharing : undefined;
  if (!isMapping(sharing) || !Object.hasOwn(sharing, 'timeSlicing')) return [];
  const { timeSlicing } = sharing;
  if (timeSlicing === null) {
    return [
      {
        path: ['sharing', 'timeSlicing'],
        message: `no resources specified: ${NO_VALUE} (list resources under it, or remove the key)`,
      },
    ];
  }
  const resources = isMapping(timeSlicing) ? timeSlicing.resources : undefined;
  if (!Array.isArray(resources)) return [];
  return resources.flatMap((entry: unknown, index) =>
    isMapping(entry)
      ? Object.entries(TIME_SLICED_NULLS)
          .filter(([key]) => Object.hasOwn(entry, key) && entry[key] === null)
          .map(([key, message]) => ({ path: ['sharing', 'timeSlicing', 'resources', index, key], message }))
      : [],
  );
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
