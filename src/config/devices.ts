/**
 * The `devices` field of a shared resource, in NVIDIA's forms (api/config/v1/replicas.go): `"all"`, a
 * positive count, or a list of GPU indices, MIG indices `"i:j"` and GPU/MIG UUIDs. Error texts keep
 * NVIDIA's wording so people searching for them find the same explanations.
 */

import type { Result } from '../result.js';
import { describeValue } from './describe.js';

/** One entry of a `devices` list. Indices are parsed to numbers; UUIDs keep their exact spelling. */
export type DeviceRef =
  | { type: 'index'; index: number }
  | { type: 'mig-index'; gpu: number; mig: number }
  | { type: 'uuid'; uuid: string };

/** Which physical devices a shared resource covers. */
export type DeviceSelection =
  | { type: 'all' }
  | { type: 'count'; count: number }
  | { type: 'list'; devices: DeviceRef[] };

export interface DeviceProblem {
  /** Index in the list, when the problem is one entry of it. */
  index?: number;
  message: string;
}

export type DevicesResult = Result<DeviceSelection, DeviceProblem[]>;

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const GPU_UUID = new RegExp(`^GPU-${UUID}$`);
// Both MIG UUID spellings: the current opaque one and the legacy MIG-GPU-<uuid>/<gi>/<ci>.
const MIG_UUID = new RegExp(`^MIG-(${UUID}|GPU-${UUID}/\\d+/\\d+)$`);
const UINT = /^\d+$/;
const MIG_INDEX = /^(\d+):(\d+)$/;

const ACCEPTED_REFS = 'a GPU index, "<gpu>:<mig>", GPU-<uuid>, MIG-<uuid> or MIG-GPU-<uuid>/<gi>/<ci>';
const ACCEPTED_FORMS = '"all", a count > 0 or a list of devices';

function parseDeviceRef(item: unknown): DeviceRef | undefined {
  if (typeof item === 'number') {
    return Number.isSafeInteger(item) && item >= 0 ? { type: 'index', index: item } : undefined;
  }
  if (typeof item !== 'string') return undefined;
  if (UINT.test(item)) return safeIndex(item);
  const mig = MIG_INDEX.exec(item);
  if (mig) {
    const gpu = safeIndex(mig[1]!);
    const inst = safeIndex(mig[2]!);
    return gpu && inst ? { type: 'mig-index', gpu: gpu.index, mig: inst.index } : undefined;
  }
  if (GPU_UUID.test(item) || MIG_UUID.test(item)) return { type: 'uuid', uuid: item };
  return undefined;
}

function safeIndex(digits: string): { type: 'index'; index: number } | undefined {
  const index = Number(digits);
  return Number.isSafeInteger(index) ? { type: 'index', index } : undefined;
}

export function parseDevices(value: unknown): DevicesResult {
  if (typeof value === 'string') {
    if (value === 'all') return { ok: true, value: { type: 'all' } };
    return fail(`devices set as '${value}' but the only valid string input is 'all'`);
  }
  if (typeof value === 'number' && Number.isSafeInteger(value)) {
    if (value <= 0) return fail(`devices set as '${value}' but a count of devices must be > 0`);
    return { ok: true, value: { type: 'count', count: value } };
  }
  if (Array.isArray(value)) return parseDeviceList(value);
  return fail(`unrecognized type for devices spec: ${describeValue(value)} (expected ${ACCEPTED_FORMS})`);
}

function parseDeviceList(items: readonly unknown[]): DevicesResult {
  // NVIDIA accepts an empty list, which selects nothing: almost certainly a mistake, so it is an error here.
  if (items.length === 0) return fail(`devices list is empty (expected ${ACCEPTED_FORMS})`);
  const problems: DeviceProblem[] = [];
  const devices: DeviceRef[] = [];
  const seen = new Set<string>();
  items.forEach((item, index) => {
    const ref = parseDeviceRef(item);
    if (!ref) {
      problems.push({
        index,
        message: `unsupported type for device in devices list (got ${describeValue(item)}; expected ${ACCEPTED_REFS})`,
      });
      return;
    }
    const key = JSON.stringify(ref);
    if (!seen.has(key)) devices.push(ref);
    seen.add(key);
  });
  return problems.length > 0
    ? { ok: false, error: problems }
    : { ok: true, value: { type: 'list', devices } };
}

function fail(message: string): DevicesResult {
  return { ok: false, error: [{ message }] };
}
