/** Options shared by the agent's commands. */

import { LOG_LEVELS } from '../log.js';
import { DEFAULT_NVML_LIBRARY } from '../nvml/library.js';
import type { HostPaths } from '../runtime/host.js';
import type { OptionSpec, OptionValues } from './options.js';

export const loggingOptions: OptionSpec[] = [
  {
    flag: 'log-level',
    env: 'LOG_LEVEL',
    type: 'string',
    default: 'info',
    choices: LOG_LEVELS,
    description: 'Log verbosity',
  },
  {
    flag: 'log-format',
    env: 'LOG_FORMAT',
    type: 'string',
    default: 'json',
    choices: ['json', 'pretty'],
    description: 'JSON lines for log pipelines, or pretty for people',
  },
];

export const nvmlOptions: OptionSpec[] = [
  {
    flag: 'nvml-library',
    env: 'NVML_LIBRARY',
    type: 'string',
    default: DEFAULT_NVML_LIBRARY,
    description: 'Path or soname of libnvidia-ml',
  },
  {
    flag: 'host-sys',
    env: 'HOST_SYS',
    type: 'string',
    default: '/sys',
    description: "Host's /sys (NUMA affinity)",
  },
  { flag: 'host-proc', env: 'HOST_PROC', type: 'string', default: '/proc', description: "Host's /proc" },
];

/** The host paths nvmlOptions gave. */
export function hostPathsFrom(values: OptionValues): HostPaths {
  return {
    sysfsRoot: values['host-sys'] as string,
    procRoot: values['host-proc'] as string,
  };
}
