/**
 * Preloaded (`node --import`) into a process whose footprint the benchmark reads: on each SIGUSR2 it
 * writes its memory and CPU use as JSON to `$BENCH_PROBE_FILE.<n>` (n = 1, 2, …). It loads nothing
 * else and registers nothing that keeps the process alive, so what it measures is the process's own.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const file = process.env.BENCH_PROBE_FILE;
let count = 0;
if (file) {
  process.on('SIGUSR2', () => {
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    const spaces = Object.fromEntries(
      getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]),
    );
    const sample = {
      ...memory,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      uptimeS: process.uptime(),
      spaces,
    };
    const out = `${file}.${++count}`;
    writeFileSync(`${out}.tmp`, JSON.stringify(sample));
    renameSync(`${out}.tmp`, out); // the reader polls for `out`: it must appear whole
  });
}
