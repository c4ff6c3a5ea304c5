/**
 * Where the host's /sys and /proc are (mounted elsewhere in a container), and the host facts NVML does
 * not give: NUMA affinity from sysfs and MIG capability device minors from procfs. Every component
 * reads the host through these paths.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export interface HostPaths {
  /** `/sys` on the host (NUMA node of each PCI device) */
  sysfsRoot: string;
  /** `/proc` on the host (`driver/nvidia-caps/mig-minors`) */
  procRoot: string;
}

export const DEFAULT_HOST_PATHS: HostPaths = { sysfsRoot: '/sys', procRoot: '/proc' };

/** NUMA node of a PCI device, or null when the kernel does not know (-1) or the file is absent. */
export async function readNumaNode(sysfsRoot: string, busId: string): Promise<number | null> {
  try {
    const text = await readFile(path.join(sysfsRoot, 'bus/pci/devices', busId, 'numa_node'), 'utf8');
    const node = Number.parseInt(text.trim(), 10);
    return Number.isInteger(node) && node >= 0 ? node : null;
  } catch {
    return null;
  }
}

/**
 * `/proc/driver/nvidia-caps/mig-minors` maps capability paths (`gpu0/gi1/access`,
 * `gpu0/gi1/ci0/access`) to minors of `/dev/nvidia-caps/nvidia-cap<M>`. Empty when absent
 * (no MIG support in the driver, or /proc not mounted from the host).
 */
export async function readMigMinors(procRoot: string): Promise<Map<string, number>> {
  const minors = new Map<string, number>();
  let text: string;
  try {
    text = await readFile(path.join(procRoot, 'driver/nvidia-caps/mig-minors'), 'utf8');
  } catch {
    return minors;
  }
  for (const line of text.split('\n')) {
    const [capability, minor] = line.trim().split(/\s+/);
    if (capability && minor && /^\d+$/.test(minor)) minors.set(capability, Number(minor));
  }
  return minors;
}
