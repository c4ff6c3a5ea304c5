import type { HostPaths } from '../devices/sysfs.js';
import type { OptionValues } from './options.js';

export function hostPathsFrom(values: OptionValues): HostPaths {
  return {
    sysfsRoot: values['host-sys'] as string,
    procRoot: values['host-proc'] as string,
  };
}
