/**
 * HAMi's scheduler protocol as data: annotation names and their encodings, written from HAMi's source
 * (pkg/device/devices.go, pkg/util/nodelock, pkg/device/nvidia/device.go; v2.10). Pure functions: the
 * byte-exact strings are what HAMi's scheduler reads and writes, so they are tested as strings.
 */

/** Node: the GPUs the node offers, a JSON array (v2.8+ format). */
export const REGISTER_ANNOTATION = 'hami.io/node-nvidia-register';
/**
 * Node: how well each pair of GPUs is connected, JSON `[{uuid, score: {<peer uuid>: int}}]`; HAMi's
 * scheduler reads it for its `topology-aware` GPU policy (pkg/device/nvidia/device.go).
 */
export const SCORE_ANNOTATION = 'hami.io/node-nvidia-score';
/** Node: `<RFC3339 time>,<namespace>,<pod>`, set by the scheduler when it binds a pod here. */
export const NODE_LOCK_ANNOTATION = 'hami.io/mutex.lock';
/** Pod: per container, the devices still to hand out (init containers first). */
export const TO_ALLOCATE_ANNOTATION = 'hami.io/vgpu-devices-to-allocate';
export const BIND_PHASE_ANNOTATION = 'hami.io/bind-phase';
export const BIND_TIME_ANNOTATION = 'hami.io/bind-time';
export const ASSIGNED_NODE_ANNOTATION = 'hami.io/vgpu-node';
/** The device type HAMi's scheduler writes for NVIDIA GPUs, and looks for to know work is left. */
export const NVIDIA_DEVICE_TYPE = 'NVIDIA';
export const HAMI_CORE_MODE = 'hami-core';

export type BindPhase = 'allocating' | 'success' | 'failed';

/** One device of a container's entry: `<uuid>,<type>,<MiB>,<cores>`. */
export interface ContainerDevice {
  uuid: string;
  type: string;
  memoryMiB: number;
  cores: number;
}

/** A problem with what the scheduler wrote: the message names the annotation. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

const INT32 = /^[+-]?\d+$/;

/** Go's strconv.ParseInt(s, 10, 32). */
function parseInt32(text: string, field: string, entry: string): number {
  const value = INT32.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1) {
    throw new ProtocolError(
      `${TO_ALLOCATE_ANNOTATION}: invalid ${field} field ${JSON.stringify(text)} in "${entry}"`,
    );
  }
  return value;
}

/** One container's entry: devices separated by `:`; pieces without a `,` are skipped, as HAMi does. */
function decodeContainer(entry: string): ContainerDevice[] {
  const devices: ContainerDevice[] = [];
  for (const piece of entry.split(':')) {
    if (!piece.includes(',')) continue;
    const fields = piece.split(',');
    if (fields.length < 4) {
      throw new ProtocolError(
        `${TO_ALLOCATE_ANNOTATION}: device "${piece}" has ${fields.length} fields, expected 4`,
      );
    }
    devices.push({
      uuid: fields[0]!,
      type: fields[1]!,
      memoryMiB: parseInt32(fields[2]!, 'memory', piece),
      cores: parseInt32(fields[3]!, 'core', piece),
    });
  }
  return devices;
}

/**
 * `A,NVIDIA,3000,30:;B,NVIDIA,5000,0:;` → one list per container, keeping the empty entries (and the
 * one after the last `;`): their positions map entries to containers.
 */
export function decodePodDevices(annotation: string): ContainerDevice[][] {
  return annotation.split(';').map(decodeContainer);
}

/** The inverse, byte for byte as HAMi writes it: every device ends with `:`, every entry with `;`. */
export function encodePodDevices(containers: readonly (readonly ContainerDevice[])[]): string {
  return containers
    .map((devices) => `${devices.map((d) => `${d.uuid},${d.type},${d.memoryMiB},${d.cores}:`).join('')};`)
    .join('');
}

/** What the scheduler still has to hand out: HAMi looks for its device type in the annotation. */
export function workLeft(annotation: string | undefined): boolean {
  return annotation?.includes(NVIDIA_DEVICE_TYPE) ?? false;
}

export interface NodeLock {
  time: Date;
  /** empty for the legacy form (a time alone), which names no pod */
  namespace: string;
  pod: string;
}

/** RFC 3339 as Go's time.Parse(time.RFC3339) accepts it: seconds required, optional fraction, a zone. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

function parseLockTime(text: string, value: string): Date {
  const time = RFC3339.test(text) ? new Date(text) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) {
    throw new ProtocolError(`${NODE_LOCK_ANNOTATION}: "${value}" does not start with an RFC 3339 time`);
  }
  return time;
}

/** `<time>,<namespace>,<pod>`, or the legacy `<time>` alone. */
export function parseNodeLock(value: string): NodeLock {
  if (!value.includes(',')) return { time: parseLockTime(value, value), namespace: '', pod: '' };
  const parts = value.split(',');
  if (parts.length !== 3) {
    throw new ProtocolError(
      `${NODE_LOCK_ANNOTATION}: malformed "${value}": expected 3 parts, got ${parts.length}`,
    );
  }
  return { time: parseLockTime(parts[0]!, value), namespace: parts[1]!, pod: parts[2]! };
}

/** HAMi's release rule: a lock in the new form is released only by the pod it names. */
export function lockHeldBy(value: string, namespace: string, pod: string): boolean {
  return !value.includes(',') || value.endsWith(`,${namespace},${pod}`);
}

/** One GPU as the scheduler reads it from the register annotation. */
export interface RegisteredGpu {
  id: string;
  index: number;
  count: number;
  devmem: number;
  devcore: number;
  type: string;
  numa: number;
  mode: string;
  health: boolean;
}

/**
 * The register annotation exactly as Go's encoding/json writes HAMi's DeviceInfo: fields in struct
 * order, every zero value left out (`omitempty`: index 0, numa 0 and `health: false` disappear, so a
 * missing `health` means unhealthy), and `<`, `>`, `&`, U+2028, U+2029 escaped.
 */
export function encodeRegisterAnnotation(gpus: readonly RegisteredGpu[]): string {
  const items = gpus.map((g) => {
    const out: Record<string, string | number | boolean> = {};
    if (g.id) out.id = g.id;
    if (g.index) out.index = g.index;
    if (g.count) out.count = g.count;
    if (g.devmem) out.devmem = g.devmem;
    if (g.devcore) out.devcore = g.devcore;
    if (g.type) out.type = g.type;
    if (g.numa) out.numa = g.numa;
    if (g.mode) out.mode = g.mode;
    if (g.health) out.health = true;
    return out;
  });
  return goJson(items);
}

/** One GPU's entry of the score annotation: its score with every other registered GPU. */
export interface GpuPairScores {
  uuid: string;
  score: Readonly<Record<string, number>>;
}

/**
 * The score annotation as Go's encoding/json writes HAMi's `ListDeviceScore`: `uuid` then `score`
 * (never omitted: one GPU alone gets `"score":{}`), map keys sorted bytewise as Go sorts them.
 */
export function encodeScoreAnnotation(gpus: readonly GpuPairScores[]): string {
  const bytewise = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return goJson(
    gpus.map((g) => ({
      uuid: g.uuid,
      score: Object.fromEntries(Object.entries(g.score).sort(([a], [b]) => bytewise(a, b))),
    })),
  );
}

function goJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** `type` as HAMi registers it: the NVML name, prefixed `NVIDIA-` unless it starts with NVIDIA. */
export function registeredType(nvmlName: string): string {
  return nvmlName.startsWith('NVIDIA') ? nvmlName : `NVIDIA-${nvmlName}`;
}

/** Go's strconv.ParseBool true values: how HAMi reads `CUDA_DISABLE_CONTROL`. */
export function goTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value);
}
