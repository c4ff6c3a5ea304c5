/**
 * How fast a change on the node reaches kubelet, measured at the kubelet simulator:
 *   - ConfigMap edit (kubelet's AtomicWriter `..data` swap) → the new device list;
 *   - Xid in the mock NVML → the GPU Unhealthy in the list;
 *   - kubelet restart (kubelet.sock re-created) → re-registered with the 8 GPUs listed.
 * Floor of each: the bare grpc-js plugin doing the least the same path needs (fs.watch and a regex;
 * koffi's event wait on the same mock; fs.watch and Register). Trials alternate agent and floor.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { RESOURCE, startPair } from '../lib/rig.mjs';
import { figure } from '../lib/stats.mjs';

const GPUS = 8;
const timeSliced = (replicas) =>
  `version: v1\nsharing:\n  timeSlicing:\n    resources:\n      - name: ${RESOURCE}\n        replicas: ${replicas}\n`;

async function timed(rig, change, predicate, description) {
  const t0 = performance.now();
  await change();
  await rig.kubelet.waitFor(predicate, { timeoutMs: 15_000, description: `${rig.kind}: ${description}` });
  return performance.now() - t0;
}

async function configSwaps(swaps) {
  const config = timeSliced(2);
  const { agent, floor } = await startPair(
    { config, expectDevices: GPUS * 2 },
    { config, expectDevices: GPUS * 2 },
  );
  const samples = { agent: [], floor: [] };
  try {
    for (let i = 0; i < swaps; i++) {
      const replicas = 3 + (i % 2);
      for (const rig of i % 2 === 0 ? [agent, floor] : [floor, agent]) {
        await sleep(300); // the previous update settles: each swap is measured on its own
        const listed = (s) => s.get(RESOURCE)?.devices.length === GPUS * replicas;
        const ms = await timed(
          rig,
          () => rig.configMap.write({ default: timeSliced(replicas) }),
          listed,
          `${GPUS * replicas} devices`,
        );
        samples[rig.kind].push(ms);
      }
    }
  } finally {
    await agent.stop();
    await floor.stop();
  }
  return figure(
    'propagation',
    'ConfigMap ..data swap → new list at kubelet',
    'ms',
    samples.agent,
    'bare: fs.watch + regex',
    samples.floor,
  );
}

async function xids(rounds) {
  const samples = { agent: [], floor: [] };
  for (let round = 0; round < rounds; round++) {
    const { agent, floor } = await startPair({}, { nvml: true });
    try {
      for (let gpu = 0; gpu < GPUS; gpu++) {
        for (const rig of gpu % 2 === 0 ? [agent, floor] : [floor, agent]) {
          const uuid = rig.uuids[gpu];
          const unhealthy = (s) =>
            s.get(RESOURCE)?.devices.find((d) => d.ID === uuid)?.health === 'Unhealthy';
          // Xid 48 (double-bit ECC): critical for both, not one of the application Xids NVIDIA ignores
          samples[rig.kind].push(
            await timed(rig, () => rig.node.injectEvent({ uuid, xid: 48 }), unhealthy, `${uuid} Unhealthy`),
          );
        }
      }
    } finally {
      await agent.stop();
      await floor.stop();
    }
  }
  return figure(
    'propagation',
    'Xid in the mock → Unhealthy at kubelet',
    'ms',
    samples.agent,
    'bare: koffi event wait',
    samples.floor,
  );
}

/** From kubelet.sock being re-created to the plugin registered again with its devices listed. */
async function restartOnce(rig) {
  const before = rig.kubelet.resource(RESOURCE)?.registrations ?? 0;
  let recreated;
  rig.kubelet.once('restart', () => {
    recreated = performance.now();
  });
  await rig.kubelet.restart();
  await rig.kubelet.waitFor(
    (s) => {
      const r = s.get(RESOURCE);
      return r?.connected === true && r.registrations > before && r.devices.length === GPUS;
    },
    { timeoutMs: 15_000, description: `${rig.kind} re-registered` },
  );
  return performance.now() - recreated;
}

async function kubeletRestarts(restarts) {
  const { agent, floor } = await startPair({}, { watchKubelet: true });
  const samples = { agent: [], floor: [] };
  try {
    for (let i = 0; i < restarts; i++) {
      for (const rig of i % 2 === 0 ? [agent, floor] : [floor, agent]) {
        await sleep(100);
        samples[rig.kind].push(await restartOnce(rig));
      }
    }
  } finally {
    await agent.stop();
    await floor.stop();
  }
  return figure(
    'propagation',
    'kubelet restart → re-registered, 8 GPUs listed',
    'ms',
    samples.agent,
    'bare: fs.watch + Register',
    samples.floor,
  );
}

export async function propagationSuite({ quick }) {
  return [
    await configSwaps(quick ? 4 : 20),
    await xids(quick ? 1 : 2),
    await kubeletRestarts(quick ? 5 : 20),
  ];
}
