/**
 * The kubelet protos (device plugin v1beta1, PodResources v1) as typed gRPC service definitions, client
 * constructors and the API constants.
 *
 * The types come from `src/kubelet-api/generated/` (`npm run gen:proto`). The runtime definitions are
 * built from the JSON descriptor generated with them (`generated/descriptor.ts`) by protobufjs/light:
 * parsing the `.proto` text at start-up with proto-loader cost ~200 ms of module loading and parsing
 * (docs/performance.md). The conversions are proto-loader's, with the options the types were generated
 * with, so the two agree (test/kubelet-api/descriptor.test.ts compares them).
 */
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs/light.js';
import type { ProtoGrpcType } from './generated/api.js';
import { kubeletApiDescriptor } from './generated/descriptor.js';
import type { PodResourcesListerClient as PodResourcesListerClientType } from './generated/v1/PodResourcesLister.js';
import type { DevicePluginClient as DevicePluginClientType } from './generated/v1beta1/DevicePlugin.js';
import type { RegistrationClient as RegistrationClientType } from './generated/v1beta1/Registration.js';

export type {
  AllocatableResourcesResponse,
  AllocatableResourcesResponse__Output,
} from './generated/v1/AllocatableResourcesResponse.js';
export type { ContainerDevices, ContainerDevices__Output } from './generated/v1/ContainerDevices.js';
export type { ContainerResources__Output } from './generated/v1/ContainerResources.js';
export type { GetPodResourcesResponse__Output } from './generated/v1/GetPodResourcesResponse.js';
export type { ListPodResourcesResponse__Output } from './generated/v1/ListPodResourcesResponse.js';
export type { PodResources, PodResources__Output } from './generated/v1/PodResources.js';
export type { PodResourcesListerHandlers } from './generated/v1/PodResourcesLister.js';
export type { AllocateRequest__Output } from './generated/v1beta1/AllocateRequest.js';
export type { AllocateResponse, AllocateResponse__Output } from './generated/v1beta1/AllocateResponse.js';
export type {
  ContainerAllocateResponse,
  ContainerAllocateResponse__Output,
} from './generated/v1beta1/ContainerAllocateResponse.js';
export type { ContainerPreferredAllocationRequest__Output } from './generated/v1beta1/ContainerPreferredAllocationRequest.js';
export type { Device, Device__Output } from './generated/v1beta1/Device.js';
export type { DevicePluginHandlers } from './generated/v1beta1/DevicePlugin.js';
export type {
  DevicePluginOptions,
  DevicePluginOptions__Output,
} from './generated/v1beta1/DevicePluginOptions.js';
export type { DeviceSpec } from './generated/v1beta1/DeviceSpec.js';
export type { Empty } from './generated/v1beta1/Empty.js';
export type {
  ListAndWatchResponse,
  ListAndWatchResponse__Output,
} from './generated/v1beta1/ListAndWatchResponse.js';
export type { Mount } from './generated/v1beta1/Mount.js';
export type { PreferredAllocationRequest__Output } from './generated/v1beta1/PreferredAllocationRequest.js';
export type {
  PreferredAllocationResponse,
  PreferredAllocationResponse__Output,
} from './generated/v1beta1/PreferredAllocationResponse.js';
export type { PreStartContainerRequest__Output } from './generated/v1beta1/PreStartContainerRequest.js';
export type { RegisterRequest, RegisterRequest__Output } from './generated/v1beta1/RegisterRequest.js';
export type { RegistrationHandlers } from './generated/v1beta1/Registration.js';

/** The only device plugin API version kubelet accepts. */
export const KUBELET_API_VERSION = 'v1beta1';
/** Device health values understood by kubelet (anything but HEALTHY counts as unhealthy). */
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';
/** Hard-coded in kubelet; it does not follow `--root-dir`. */
export const DEFAULT_DEVICE_PLUGIN_DIR = '/var/lib/kubelet/device-plugins';
/** kubelet's Registration socket, inside the device plugin directory. */
export const KUBELET_SOCKET_NAME = 'kubelet.sock';

/**
 * What decoded messages look like: proto-loader's keepCase, longs: String, enums: String, defaults,
 * oneofs (keepCase is in the descriptor's field names); `npm run gen:proto` generates the types so.
 */
const CONVERSION: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

const protoRoot = protobuf.Root.fromJSON(kubeletApiDescriptor);

function serializer(type: protobuf.Type): grpc.serialize<object> {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`cannot serialize an array as ${type.fullName.slice(1)}`);
    return Buffer.from(type.encode(type.fromObject(value)).finish());
  };
}

function deserializer(type: protobuf.Type): grpc.deserialize<object> {
  return (bytes) => type.toObject(type.decode(bytes), CONVERSION);
}

/** grpc-js's definition of one service of the descriptor (`v1beta1.DevicePlugin`), as proto-loader makes it. */
function serviceDefinition(name: string): grpc.ServiceDefinition {
  const service = protoRoot.lookupService(name);
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const request = method.resolvedRequestType;
    const response = method.resolvedResponseType;
    if (!request || !response) throw new Error(`${name}.${method.name}: message types not in the descriptor`);
    definition[method.name] = {
      path: `/${name}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return definition;
}

function clientConstructor(name: string, serviceName: string) {
  return grpc.makeClientConstructor(serviceDefinition(name), serviceName);
}

const loaded = {
  v1beta1: {
    DevicePlugin: clientConstructor('v1beta1.DevicePlugin', 'DevicePlugin'),
    Registration: clientConstructor('v1beta1.Registration', 'Registration'),
  },
  v1: { PodResourcesLister: clientConstructor('v1.PodResourcesLister', 'PodResourcesLister') },
} as unknown as Pick<ProtoGrpcType, 'v1beta1' | 'v1'>;

/** `v1beta1.DevicePlugin`: served by each plugin on its own socket. */
export const devicePluginService = loaded.v1beta1.DevicePlugin.service;
/** `v1beta1.Registration`: served by kubelet on kubelet.sock. */
export const registrationService = loaded.v1beta1.Registration.service;
/** `v1.PodResourcesLister`: served by kubelet on /var/lib/kubelet/pod-resources/kubelet.sock. */
export const podResourcesListerService = loaded.v1.PodResourcesLister.service;

/** Client constructors; each name is also the type of its instances. */
export const DevicePluginClient = loaded.v1beta1.DevicePlugin;
export type DevicePluginClient = DevicePluginClientType;
export const RegistrationClient = loaded.v1beta1.Registration;
export type RegistrationClient = RegistrationClientType;
export const PodResourcesListerClient = loaded.v1.PodResourcesLister;
export type PodResourcesListerClient = PodResourcesListerClientType;

/** gRPC target for a Unix socket: `unix://` + absolute path (`unix:///var/lib/...`). */
export function unixTarget(path: string): string {
  return `unix://${resolve(path)}`;
}
