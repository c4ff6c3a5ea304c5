/**
 * The two host facts GPU feature labels need besides NVML, read from sysfs as gpu-feature-discovery
 * reads them: the machine type (`class/dmi/id/product_name`) and each GPU's PCI class (`gpu.mode`).
 * Read once at start: neither changes while the node runs. Unreadable ones are null (GFD: `unknown`).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Gpu } from '../devices/inventory-types.js';
import type { HostLabelFacts } from '../devices/node-labels.js';

async function readTrimmed(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** `0x030200` → 0x030200; null when absent or not hexadecimal. */
async function readPciClass(sysfsRoot: string, busId: string): Promise<number | null> {
  const text = await readTrimmed(path.join(sysfsRoot, 'bus/pci/devices', busId, 'class'));
  if (text === null || !/^0x[0-9a-f]+$/i.test(text)) return null;
  return Number.parseInt(text.slice(2), 16);
}

export async function readHostLabelFacts(sysfsRoot: string, gpus: readonly Gpu[]): Promise<HostLabelFacts> {
  const classes = await Promise.all(
    gpus.map(async (g) => [g.uuid, await readPciClass(sysfsRoot, g.busId)] as const),
  );
  return {
    machineType: await readTrimmed(path.join(sysfsRoot, 'class/dmi/id/product_name')),
    pciClasses: new Map(classes),
  };
}
