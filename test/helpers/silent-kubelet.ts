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
  /** of those, calls the plugin cancelled */
  cancelled: number;
  stop(): void;
}

export async function startSilentKubelet(dir: string): Promise<SilentKubelet> {
  const server = new grpc.Server();
  const kubelet: SilentKubelet = { calls: 0, cancelled: 0, stop: () => server.forceShutdown() };
  const handlers: RegistrationHandlers = {
    Register: (call) => {
      kubelet.calls++;
      call.on('cancelled', () => kubelet.cancelled++);
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
