/** A kubelet.sock that accepts Register calls and never answers them (a hung kubelet). */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  KUBELET_SOCKET_NAME,
  type RegistrationHandlers,
  registrationService,
  unixTarget,
} from '../../src/kubelet-api/proto.js';

export interface SilentKubelet {
  /** Register calls received */
  calls: number;
  /** of those, calls that ended cancelled: by the plugin, or by its deadline running out */
  cancelled: number;
  /** of those, calls cancelled while their deadline was still ahead: the plugin gave up waiting */
  cancelledBeforeDeadline: number;
  stop(): void;
}

export async function startSilentKubelet(dir: string): Promise<SilentKubelet> {
  const server = new grpc.Server();
  const kubelet: SilentKubelet = {
    calls: 0,
    cancelled: 0,
    cancelledBeforeDeadline: 0,
    stop: () => server.forceShutdown(),
  };
  const handlers: RegistrationHandlers = {
    Register: (call) => {
      kubelet.calls++;
      const deadline = Number(call.getDeadline());
      call.on('cancelled', () => {
        kubelet.cancelled++;
        if (Date.now() < deadline) kubelet.cancelledBeforeDeadline++;
      });
    },
  };
  server.addService(registrationService, handlers);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      unixTarget(path.join(dir, KUBELET_SOCKET_NAME)),
      grpc.ServerCredentials.createInsecure(),
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  return kubelet;
}
