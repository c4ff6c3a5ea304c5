/**
 * Build check of the mock NVML library: both variants build, the legacy one lacks exactly the
 * symbols an old driver lacks, and every shipped node file loads. Behaviour is tested through the
 * real binding in test/nvml.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi, { type LibraryHandle } from 'koffi';
import { describe, expect, it } from 'vitest';

const mockDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/mock-nvml');
const current = path.join(mockDir, 'build/libnvidia-ml.so.1');
const legacy = path.join(mockDir, 'build/legacy/libnvidia-ml.so.1');
const newerSymbols = [
  'nvmlDeviceGetComputeRunningProcesses_v3',
  'nvmlDeviceGetGraphicsRunningProcesses_v3',
  'nvmlDeviceGetMPSComputeRunningProcesses_v3',
  'nvmlDeviceGetProcessUtilization',
  'nvmlDeviceGetTemperatureV',
  'nvmlSystemGetCudaDriverVersion_v2',
];

function exports(library: LibraryHandle, symbol: string): boolean {
  try {
    library.func(symbol, 'int', []);
    return true;
  } catch {
    return false;
  }
}

describe('mock NVML build', () => {
  it('builds both variants (a no-op when up to date)', () => {
    const output = execFileSync(process.execPath, [path.join(mockDir, 'build.mjs')], { encoding: 'utf8' });
    expect(output.trim().split('\n')).toHaveLength(2);
    expect(existsSync(current)).toBe(true);
    expect(existsSync(legacy)).toBe(true);
  });

  it('leaves the newer symbols out of the legacy variant only', () => {
    const modern = koffi.load(current);
    const old = koffi.load(legacy);
    try {
      for (const symbol of newerSymbols) {
        expect(exports(modern, symbol), symbol).toBe(true);
        expect(exports(old, symbol), symbol).toBe(false);
      }
      // what the old driver has instead
      expect(exports(old, 'nvmlDeviceGetComputeRunningProcesses_v2')).toBe(true);
      expect(exports(old, 'nvmlDeviceGetGraphicsRunningProcesses_v2')).toBe(true);
      expect(exports(old, 'nvmlDeviceGetMPSComputeRunningProcesses_v2')).toBe(true);
      expect(exports(old, 'nvmlSystemGetCudaDriverVersion')).toBe(true);
    } finally {
      modern.unload();
      old.unload();
    }
  });

  it('loads every shipped node file', () => {
    const library = koffi.load(current);
    const init = library.func('int nvmlInit_v2()');
    const shutdown = library.func('int nvmlShutdown()');
    const count = library.func('int nvmlDeviceGetCount_v2(_Out_ uint32_t *count)');
    const saved = process.env.MOCK_NVML_STATE;
    try {
      const nodes = readdirSync(path.join(mockDir, 'nodes')).filter((f) => f.endsWith('.json'));
      expect(nodes.length).toBeGreaterThanOrEqual(3);
      for (const node of nodes) {
        const file = path.join(mockDir, 'nodes', node);
        // the state file is read at the first nvmlInit, after a shutdown to zero
        process.env.MOCK_NVML_STATE = file;
        expect(init(), node).toBe(0);
        const n = [0];
        expect(count(n)).toBe(0);
        expect(n[0], node).toBe(JSON.parse(readFileSync(file, 'utf8')).devices.length);
        expect(shutdown()).toBe(0);
      }
    } finally {
      if (saved === undefined) delete process.env.MOCK_NVML_STATE;
      else process.env.MOCK_NVML_STATE = saved;
      library.unload();
    }
  });
});
