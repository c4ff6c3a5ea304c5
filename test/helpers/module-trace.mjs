/**
 * Preloaded with `node --import` by tests that check what a process loads: registers
 * module-trace-hooks.mjs, which appends the URL of every module loaded through the ES module loader
 * (the agent's own, and packages' entry points) to the file named by MODULE_TRACE_FILE.
 */
import { register } from 'node:module';

register('./module-trace-hooks.mjs', import.meta.url);
