#!/usr/bin/env node
import module from 'node:module';

// The NVML event wait occupies one libuv pool thread; koffi's async calls and fs share the pool, so
// give it more than the default 4 threads. This must happen before anything touches the pool, hence
// the dynamic import below.
process.env.UV_THREADPOOL_SIZE ??= '8';

// V8's compile cache (Node ≥ 22.1; absent on Node 20): modules compiled once are not compiled again
// at the next start. The directory is NODE_COMPILE_CACHE (the image ships one warmed at build time),
// else <tmpdir>/node-compile-cache; one that cannot be written leaves start-up as it was. Only modules
// loaded after this call are cached, hence, again, the dynamic import.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const { runCli } = await import('./run.js');
const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
process.exitCode = code;
