import { status } from '@grpc/grpc-js';

/** A request kubelet made that we refuse: becomes a gRPC error with this status and message. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new RequestError(status.INVALID_ARGUMENT, message);

const MAX_IDS_NAMED = 8;
const MAX_ID_CHARS = 64;

/**
 * Device IDs as named in an error or a log line: at most 8, each cut to 64 characters, with a count
 * of what was left out. A request's IDs come from outside: one 200 KB ID must not become 200 KB of
 * log, nor of the error kubelet records in the pod's events.
 */
export function describeIds(ids: readonly string[]): string {
  const named = ids.slice(0, MAX_IDS_NAMED).map(shortened).join(', ');
  return ids.length > MAX_IDS_NAMED ? `${named} (+${ids.length - MAX_IDS_NAMED} more)` : named;
}

function shortened(id: string): string {
  return id.length <= MAX_ID_CHARS ? id : `${id.slice(0, MAX_ID_CHARS)}… (${id.length} characters)`;
}
