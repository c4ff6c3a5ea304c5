/**
 * The kubelet API as the agent loads it (protobufjs/light on the descriptor generated from proto/)
 * against what proto-loader makes of the .proto text: the generated form must be current with proto/,
 * and every method of every service must encode and decode the same bytes and objects.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import {
  DevicePluginClient,
  PodResourcesListerClient,
  RegistrationClient,
} from '../../src/kubelet-api/proto.js';

const root = path.resolve(import.meta.dirname, '../..');

function protoLoaderApi() {
  const definition = protoLoader.loadSync(['deviceplugin/v1beta1/api.proto', 'podresources/v1/api.proto'], {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [path.join(root, 'proto')],
  });
  // biome-ignore lint/suspicious/noExplicitAny: proto-loader's untyped package object
  const api = grpc.loadPackageDefinition(definition) as any;
  return {
    DevicePlugin: api.v1beta1.DevicePlugin.service as grpc.ServiceDefinition,
    Registration: api.v1beta1.Registration.service as grpc.ServiceDefinition,
    PodResourcesLister: api.v1.PodResourcesLister.service as grpc.ServiceDefinition,
  };
}

const ours = {
  DevicePlugin: DevicePluginClient.service,
  Registration: RegistrationClient.service,
  PodResourcesLister: PodResourcesListerClient.service,
} as unknown as Record<string, grpc.ServiceDefinition>;

const device = { ID: 'GPU-1::2', health: 'Healthy', topology: { nodes: [{ ID: '1' }] } };
const containerResources = {
  name: 'c',
  devices: [{ resource_name: 'nvidia.com/gpu', device_ids: ['GPU-1'], topology: { nodes: [{ ID: '0' }] } }],
  cpu_ids: ['3', '9007199254740993'],
  memory: [{ memory_type: 'memory', size: '18446744073709551615' }],
  dynamic_resources: [],
};
/** Messages with every kind of field the protos have: maps, repeated, nested, int64, uint64, bool. */
const SAMPLES: object[] = [
  {},
  { devices: [device, { ID: 'GPU-2', health: 'Unhealthy' }] },
  { container_requests: [{ devicesIDs: ['GPU-1', 'GPU-2'] }] },
  {
    container_responses: [
      {
        envs: { NVIDIA_VISIBLE_DEVICES: 'GPU-1', A: '' },
        mounts: [{ container_path: '/c', host_path: '/h', read_only: true }],
        devices: [{ container_path: '/dev/nvidia0', host_path: '/dev/nvidia0', permissions: 'rw' }],
        annotations: { k: 'v' },
        cdi_devices: [{ name: 'nvidia.com/gpu=0' }],
      },
    ],
  },
  {
    container_requests: [
      { available_deviceIDs: ['a', 'b'], must_include_deviceIDs: ['a'], allocation_size: 2 },
    ],
  },
  {
    version: 'v1beta1',
    endpoint: 'vgpu-gpu.sock',
    resource_name: 'nvidia.com/gpu',
    options: { pre_start_required: true, get_preferred_allocation_available: true },
  },
  { pod_resources: [{ name: 'p', namespace: 'n', containers: [containerResources] }] },
  { devices: [containerResources.devices[0]], cpu_ids: ['1'], memory: containerResources.memory },
];

function roundTrips(
  theirs: grpc.MethodDefinition<object, object>,
  mine: grpc.MethodDefinition<object, object>,
) {
  for (const sample of SAMPLES) {
    for (const side of ['request', 'response'] as const) {
      const serialize = side === 'request' ? 'requestSerialize' : 'responseSerialize';
      const deserialize = side === 'request' ? 'requestDeserialize' : 'responseDeserialize';
      let expected: Buffer;
      try {
        expected = theirs[serialize](sample);
      } catch {
        // A sample that does not fit this message type: both must refuse it.
        expect(() => mine[serialize](sample)).toThrow();
        continue;
      }
      expect(mine[serialize](sample)).toEqual(expected);
      expect(mine[deserialize](expected)).toEqual(theirs[deserialize](expected));
    }
  }
}

describe('the kubelet API descriptor', () => {
  it('is current with proto/ (npm run gen:proto writes it)', async () => {
    const run = promisify(execFile);
    await expect(
      run(process.execPath, [path.join(root, 'scripts/kubelet-descriptor.mjs'), '--check']),
    ).resolves.toBeDefined();
  });

  it('gives every method the path, streaming and conversions proto-loader gives it', () => {
    const theirs = protoLoaderApi();
    for (const [service, definition] of Object.entries(theirs)) {
      const mine = ours[service]!;
      expect(Object.keys(mine).sort(), service).toEqual(Object.keys(definition).sort());
      for (const [name, method] of Object.entries(definition)) {
        const our = mine[name]!;
        expect({
          path: our.path,
          req: our.requestStream,
          res: our.responseStream,
          as: our.originalName,
        }).toEqual({
          path: method.path,
          req: method.requestStream,
          res: method.responseStream,
          as: method.originalName,
        });
        roundTrips(method, our);
      }
    }
  });

  it('refuses an array where a message goes, as proto-loader does', () => {
    expect(() => ours.DevicePlugin!.Allocate!.requestSerialize([] as unknown as object)).toThrow(/array/);
  });
});
