/** Runs the monitor benchmarks in a process of their own (monitor-child.mjs) and returns its figures. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'monitor-child.mjs');

export function monitorSuite({ quick }) {
  return new Promise((resolve, reject) => {
    // --expose-gc: heap figures after a full collection, so growth is not confused with garbage
    const proc = spawn(process.execPath, ['--expose-gc', child, ...(quick ? ['--quick'] : [])], {
      env: { PATH: process.env.PATH, UV_THREADPOOL_SIZE: '8' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (chunk) => {
      out += chunk;
    });
    proc.on('exit', (code) => {
      if (code !== 0) reject(new Error(`monitor benchmarks exited with ${code}`));
      else resolve(JSON.parse(out));
    });
  });
}
