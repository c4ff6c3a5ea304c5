#!/usr/bin/env node
// The NVML event wait occupies one libuv pool thread; koffi's async calls and fs share the pool, so
// give it more than the default 4 threads. This must happen before anything touches the pool, hence
// the dynamic import below.
process.env.UV_THREADPOOL_SIZE ??= '8';

const { runCli } = await import('./run.js');
const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
process.exitCode = code;
