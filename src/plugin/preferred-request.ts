/**
 * Checks a GetPreferredAllocation request against the resource's own devices before any search.
 * Kubelet offers only devices we advertised, each once, and asks for no more than it offers, so a
 * request that breaks those rules is refused with INVALID_ARGUMENT naming its first problem. It also
 * bounds what reaches the policies by the resource's size, whatever the sender wrote; the check
 * itself is one pass over the IDs.
 */
import type { PreferredAllocationRequest } from './preferred-allocation.js';
import { invalidArgument } from './request-error.js';

/** Longest ID quoted back in a message (kubelet's are at most 63 characters); longer ones are cut. */
const MAX_QUOTED_ID_LENGTH = 80;

/** The devices a request is checked against: each ID's position in the resource's list. */
export type KnownDevices = ReadonlyMap<string, number>;

/**
 * The request, marked as checked; throws RequestError(INVALID_ARGUMENT) naming its first problem
 * instead when it has one.
 */
export function checkPreferredRequest(
  request: PreferredAllocationRequest,
  resourceName: string,
  devices: KnownDevices,
): PreferredAllocationRequest {
  const problem = sizeProblem(request, devices.size) ?? idProblem(request, devices);
  if (problem !== undefined) {
    throw invalidArgument(`invalid GetPreferredAllocation request for ${resourceName}: ${problem}`);
  }
  return { ...request, checked: true };
}

/** A device ID as it may appear in a message: JSON-quoted, and cut when overlong. */
export function quoteId(id: string): string {
  if (id.length <= MAX_QUOTED_ID_LENGTH) return JSON.stringify(id);
  return `${JSON.stringify(id.slice(0, MAX_QUOTED_ID_LENGTH))}… (${id.length} characters)`;
}

/** Counts first: they bound every later step (must-include ≤ size ≤ available ≤ the resource). */
function sizeProblem(request: PreferredAllocationRequest, deviceCount: number): string | undefined {
  const { available, mustInclude, size } = request;
  if (available.length > deviceCount) {
    return `${available.length} available device IDs, but the resource has ${deviceCount} devices`;
  }
  if (!Number.isInteger(size) || size < 1) return `allocation_size ${size} is not a positive integer`;
  if (size > available.length) {
    return `allocation_size ${size} is more than the ${available.length} available device IDs`;
  }
  if (size < mustInclude.length) {
    return `allocation_size ${size} is less than the ${mustInclude.length} must-include device IDs`;
  }
  return undefined;
}

/** One lookup per ID; repeats are found by marking positions, not by building sets of IDs. */
function idProblem(request: PreferredAllocationRequest, devices: KnownDevices): string | undefined {
  const OFFERED = 1;
  const REQUIRED = 2;
  const marks = new Uint8Array(devices.size);
  for (const id of request.available) {
    const index = devices.get(id);
    if (index === undefined) return `available device ID ${quoteId(id)} is not a device of this resource`;
    if (marks[index] === OFFERED) return `available device ID ${quoteId(id)} is listed twice`;
    marks[index] = OFFERED;
  }
  for (const id of request.mustInclude) {
    const index = devices.get(id);
    if (index === undefined || marks[index] === 0) {
      return `must-include device ID ${quoteId(id)} is not among the available ones`;
    }
    if (marks[index] === REQUIRED) return `must-include device ID ${quoteId(id)} is listed twice`;
    marks[index] = REQUIRED;
  }
  return undefined;
}
