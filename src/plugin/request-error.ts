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
