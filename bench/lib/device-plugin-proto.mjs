/**
 * The kubelet device plugin API (proto/deviceplugin/v1beta1) loaded with plain grpc-js and
 * proto-loader, for the benchmark's own kubelet-side client and for the floor plugin. Deliberately
 * independent of the agent's modules, so a floor measures only what any grpc-js plugin must do.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const protoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');
const definition = protoLoader.loadSync('deviceplugin/v1beta1/api.proto', {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [protoDir],
});
const api = grpc.loadPackageDefinition(definition).v1beta1;

export { grpc };
export const DevicePluginClient = api.DevicePlugin;
export const RegistrationClient = api.Registration;
export const devicePluginService = api.DevicePlugin.service;

export function unixTarget(socketPath) {
  return `unix://${path.resolve(socketPath)}`;
}
