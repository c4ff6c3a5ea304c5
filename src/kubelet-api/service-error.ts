/**
 * The errors a kubelet API server answers with. grpc-js sends a thrown error's `code` and `details`
 * to the caller, so each is built with both, the way kubelet and the plugin word them.
 */
import * as grpc from '@grpc/grpc-js';

export function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/** Whether `err` already carries a gRPC status (a failed call, or one of the errors above). */
export function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
}
