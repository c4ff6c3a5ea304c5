#!/usr/bin/env node
/**
 * The floor the benchmark compares the agent's plugin with: a bare grpc-js device plugin on the same
 * proto that registers with kubelet, streams a device list and answers every call with an empty
 * reply. Optional features do the minimum the agent's matching path must also do, with no logic of
 * its own, so each ratio shows what the agent adds over the runtime:
 *
 *   --watch-config <dir>  fs.watch the ConfigMap directory; on any event read `<dir>/<key>`, take
 *                         `replicas: N` with a regex and stream GPUs × N devices
 *   --nvml <library>      open NVML through koffi (MOCK_NVML_STATE), list the GPUs by UUID, wait on
 *                         their Xid events (500 ms slices on the libuv pool) and stream the device as
 *                         Unhealthy when one comes
 *   --watch-kubelet       fs.watch the plugin directory; when kubelet.sock is re-created, serve the
 *                         socket again and re-register
 *
 * Always: --dir <device-plugin dir>, --socket <file name>, --resource <name>, and --devices <id,id,…>
 * unless --nvml lists them. Exits on SIGTERM after removing its socket.
 */
import { existsSync, watch } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { devicePluginService, grpc, RegistrationClient, unixTarget } from '../lib/device-plugin-proto.mjs';

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    socket: { type: 'string', default: 'bare.sock' },
    resource: { type: 'string', default: 'nvidia.com/gpu' },
    devices: { type: 'string', default: '' },
    'watch-config': { type: 'string' },
    'config-key': { type: 'string', default: 'default' },
    nvml: { type: 'string' },
    'watch-kubelet': { type: 'boolean', default: false },
  },
});

const socketPath = path.join(args.dir, args.socket);
let gpuIds = args.devices ? args.devices.split(',') : [];
let replicas = 1;
const unhealthy = new Set();
const streams = new Set();
let server;

function deviceList() {
  const devices = [];
  for (const id of gpuIds) {
    const health = unhealthy.has(id) ? 'Unhealthy' : 'Healthy';
    if (replicas === 1) devices.push({ ID: id, health });
    else for (let r = 0; r < replicas; r++) devices.push({ ID: `${id}::${r}`, health });
  }
  return { devices };
}

function publish() {
  const list = deviceList();
  for (const stream of streams) stream.write(list);
}

const handlers = {
  GetDevicePluginOptions: (_call, callback) =>
    callback(null, { pre_start_required: false, get_preferred_allocation_available: true }),
  ListAndWatch: (call) => {
    streams.add(call);
    call.on('cancelled', () => streams.delete(call));
    call.on('close', () => streams.delete(call));
    call.write(deviceList());
  },
  GetPreferredAllocation: (call, callback) =>
    callback(null, { container_responses: call.request.container_requests.map(() => ({ deviceIDs: [] })) }),
  Allocate: (call, callback) =>
    callback(null, { container_responses: call.request.container_requests.map(() => ({})) }),
  PreStartContainer: (_call, callback) => callback(null, {}),
};

async function serve() {
  server?.forceShutdown();
  streams.clear();
  await rm(socketPath, { force: true });
  server = new grpc.Server();
  server.addService(devicePluginService, handlers);
  await new Promise((resolve, reject) =>
    server.bindAsync(unixTarget(socketPath), grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

async function register() {
  const client = new RegistrationClient(
    unixTarget(path.join(args.dir, 'kubelet.sock')),
    grpc.credentials.createInsecure(),
  );
  try {
    await new Promise((resolve, reject) =>
      client.Register(
        {
          version: 'v1beta1',
          endpoint: args.socket,
          resource_name: args.resource,
          options: { pre_start_required: false, get_preferred_allocation_available: true },
        },
        { deadline: Date.now() + 10_000 },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  } finally {
    client.close();
  }
}

function watchConfig(dir) {
  let reading = false;
  let again = false;
  const readOnce = async () => {
    try {
      const text = await readFile(path.join(dir, args['config-key']), 'utf8');
      const found = Number(/replicas:\s*(\d+)/.exec(text)?.[1] ?? 1);
      if (found !== replicas) {
        replicas = found;
        publish();
      }
    } catch {
      // caught mid-swap: the swap's later events read it again
    }
  };
  // events during a read ask for one more read, so the last change is never missed
  const read = async () => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    do {
      again = false;
      await readOnce();
    } while (again);
    reading = false;
  };
  watch(dir, () => void read());
  return read();
}

function watchKubelet() {
  let busy = false;
  watch(args.dir, (_event, name) => {
    if (
      name !== 'kubelet.sock' ||
      busy ||
      existsSync(socketPath) ||
      !existsSync(path.join(args.dir, 'kubelet.sock'))
    )
      return;
    busy = true;
    serve()
      .then(register)
      .catch((err) => console.error(`bare-plugin: re-register failed: ${err.message}`))
      .finally(() => {
        busy = false;
      });
  });
}

async function watchNvmlEvents(library) {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load(library);
  // registered by name for the declarations below
  koffi.struct('bare_EventData', {
    device: 'void *',
    eventType: 'uint64',
    eventData: 'uint64',
    gpuInstanceId: 'uint32',
    computeInstanceId: 'uint32',
  });
  const init = lib.func('int nvmlInit_v2()');
  const count = lib.func('int nvmlDeviceGetCount_v2(_Out_ uint32_t *count)');
  const byIndex = lib.func('int nvmlDeviceGetHandleByIndex_v2(uint32_t index, _Out_ void **device)');
  const uuidOf = lib.func('int nvmlDeviceGetUUID(void *device, _Out_ uint8_t *uuid, uint32_t length)');
  const createSet = lib.func('int nvmlEventSetCreate(_Out_ void **set)');
  const registerEvents = lib.func('int nvmlDeviceRegisterEvents(void *device, uint64_t types, void *set)');
  const wait = lib.func('int nvmlEventSetWait_v2(void *set, _Out_ bare_EventData *data, uint32_t timeoutms)');
  if (init() !== 0) throw new Error('bare-plugin: nvmlInit_v2 failed');
  const n = [0];
  count(n);
  const set = [null];
  createSet(set);
  const uuids = new Map();
  for (let i = 0; i < n[0]; i++) {
    const handle = [null];
    byIndex(i, handle);
    const buffer = Buffer.alloc(96);
    uuidOf(handle[0], buffer, buffer.length);
    uuids.set(handle[0], koffi.decode(buffer, 'char', -1));
    registerEvents(handle[0], 0x8n, set[0]); // Xid critical errors
  }
  gpuIds = [...uuids.values()];
  const loop = () => {
    const data = {};
    wait.async(set[0], data, 500, (err, rc) => {
      if (!err && rc === 0 && uuids.has(data.device)) {
        unhealthy.add(uuids.get(data.device));
        publish();
      }
      loop();
    });
  };
  loop();
}

if (args.nvml) await watchNvmlEvents(args.nvml);
if (args['watch-config']) await watchConfig(args['watch-config']);
await serve();
await register();
if (args['watch-kubelet']) watchKubelet();

process.on('SIGTERM', () => {
  server?.forceShutdown();
  rm(socketPath, { force: true }).finally(() => process.exit(0));
});
