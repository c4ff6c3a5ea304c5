/**
 * Allocate and GetPreferredAllocation as kubelet calls them, over the Unix socket from a raw grpc-js
 * client, at concurrency 1 and 64; floor: the bare grpc-js plugin's empty handlers on the same proto.
 * Rounds alternate between the agent and the floor so both see the same machine load.
 */
import { performance } from 'node:perf_hooks';
import { startPair } from '../lib/rig.mjs';
import { figure } from '../lib/stats.mjs';

/** `total` calls with `concurrency` in flight; each call's latency in µs. */
export function measureCalls(client, method, request, concurrency, total) {
  const latencies = [];
  let started = 0;
  let done = 0;
  return new Promise((resolve, reject) => {
    const next = () => {
      if (started >= total) return;
      started++;
      const t0 = performance.now();
      client[method](request, (err) => {
        if (err) return reject(new Error(`${method}: ${err.message}`));
        latencies.push((performance.now() - t0) * 1000);
        if (++done === total) resolve(latencies);
        else next();
      });
    };
    for (let i = 0; i < concurrency; i++) next();
  });
}

export function requests(uuids) {
  return {
    Allocate: { container_requests: [{ devices_ids: [uuids[0]] }] },
    GetPreferredAllocation: {
      container_requests: [{ available_deviceIDs: uuids, must_include_deviceIDs: [], allocation_size: 2 }],
    },
  };
}

export async function latencySuite({ quick }) {
  const rounds = quick ? 2 : 4;
  const perRound = { 1: quick ? 300 : 1000, 64: quick ? 1000 : 3000 };
  const { agent, floor } = await startPair({}, {});
  const figures = [];
  try {
    const bodies = requests(agent.uuids);
    for (const method of ['Allocate', 'GetPreferredAllocation']) {
      for (const rig of [agent, floor]) await measureCalls(rig.connect(), method, bodies[method], 8, 500); // warm-up
      for (const concurrency of [1, 64]) {
        const samples = { agent: [], floor: [] };
        const wall = { agent: 0, floor: 0 };
        for (let round = 0; round < rounds; round++) {
          const order = round % 2 === 0 ? [agent, floor] : [floor, agent];
          for (const rig of order) {
            const t0 = performance.now();
            samples[rig.kind].push(
              ...(await measureCalls(
                rig.connect(),
                method,
                bodies[method],
                concurrency,
                perRound[concurrency],
              )),
            );
            wall[rig.kind] += performance.now() - t0;
          }
        }
        const callsPerSecond = (kind) => Math.round((samples[kind].length / wall[kind]) * 1000);
        // 64 in flight queue behind each other: milliseconds read better there
        const unit = concurrency === 1 ? 'µs' : 'ms';
        const scaled = (list) => (unit === 'ms' ? list.map((us) => us / 1000) : list);
        figures.push(
          figure(
            'latency',
            `${method}, concurrency ${concurrency}`,
            unit,
            scaled(samples.agent),
            'bare grpc-js, empty handler',
            scaled(samples.floor),
            {
              callsPerSecond: { agent: callsPerSecond('agent'), floor: callsPerSecond('floor') },
            },
          ),
        );
      }
    }
  } finally {
    await agent.stop();
    await floor.stop();
  }
  return figures;
}
