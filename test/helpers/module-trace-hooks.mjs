/** Loader hooks of module-trace.mjs: one line per loaded module URL in MODULE_TRACE_FILE. */
import { appendFileSync } from 'node:fs';

export async function load(url, context, nextLoad) {
  appendFileSync(process.env.MODULE_TRACE_FILE, `${url}\n`);
  return nextLoad(url, context);
}
