/**
 * Loads the kubelet protos (device plugin v1beta1, PodResources v1) once and exposes typed service
 * definitions, client constructors and the API constants.
 *
 * The types come from `src/kubelet-api/generated/` (`npm run gen:proto`); the runtime definitions come from
 * proto-loader with the same options the types were generated with, so the two always agree.
 */
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../paths.js';
import type { ProtoGrpcType } from './generated/api.js';
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

/** The proto-loader options the generated types assume (`npm run gen:proto` uses the same). */
const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

const PROTO_FILES = ['deviceplugin/v1beta1/api.proto', 'podresources/v1/api.proto'] as const;

/** The `proto/` directory of this package (next to package.json, from src/ or dist/ alike). */
const PROTO_DIR = join(packageRoot(), 'proto');

const packageDefinition = protoLoader.loadSync([...PROTO_FILES], {
  ...PROTO_LOADER_OPTIONS,
  includeDirs: [PROTO_DIR],
});
const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType;

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
