/**
 * Preloaded (`node --import`) into the plugin process under soak: on each SIGUSR2 it writes, as JSON
 * to `$SOAK_PROBE_FILE.<n>`, the process's RSS, V8 heap used, open file descriptors and the event-loop
 * delay since the previous read (p99 and max, from perf_hooks' histogram), then resets the histogram.
 */
import { readdirSync, renameSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.SOAK_PROBE_FILE;
if (file) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let count = 0;
  process.on('SIGUSR2', () => {
    const { rss, heapUsed } = process.memoryUsage();
    const sample = {
      rss,
      heapUsed,
      fds: readdirSync('/proc/self/fd').length,
      loopDelayP99Ms: delay.percentile(99) / 1e6,
      loopDelayMaxMs: delay.max / 1e6,
    };
    delay.reset();
    const out = `${file}.${++count}`;
    writeFileSync(`${out}.tmp`, JSON.stringify(sample));
    renameSync(`${out}.tmp`, out); // the reader polls for `out`: it must appear whole
  });
}
