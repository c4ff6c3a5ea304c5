/** A short, readable picture of what NVML shows on this node (inventory command and demo). */
import type { Inventory } from './inventory-types.js';

export function formatInventory(inventory: Inventory): string {
  const lines = [
    `driver ${inventory.driverVersion}, CUDA ${inventory.cudaDriverVersion ?? 'n/a'}, ${inventory.gpus.length} GPU(s)`,
  ];
  for (const gpu of inventory.gpus) {
    const nvlinkPeers = gpu.links.filter((l) => l.nvlinks > 0);
    const cc = gpu.computeCapability
      ? `cc ${gpu.computeCapability.major}.${gpu.computeCapability.minor}`
      : 'cc ?';
    lines.push(
      `  GPU ${gpu.index}  ${gpu.uuid}  ${gpu.name}  ${gpu.memoryMiB} MiB  ${cc}  pci ${gpu.busId}  ` +
        `numa ${gpu.numaNode ?? '-'}  ${gpu.deviceNodes.join(',')}` +
        (nvlinkPeers.length ? `  nvlink to ${nvlinkPeers.length} GPU(s)` : '') +
        (gpu.migCapable ? `  MIG ${gpu.migEnabled ? 'on' : 'off'}` : ''),
    );
    for (const mig of gpu.migDevices) {
      lines.push(
        `    MIG ${mig.index}  ${mig.uuid}  ${mig.profile}  ${mig.memoryMiB} MiB  ${mig.multiprocessorCount} SMs  ` +
          `gi ${mig.gpuInstanceId} ci ${mig.computeInstanceId}`,
      );
    }
  }
  for (const problem of inventory.problems) lines.push(`  ! ${problem.where}: ${problem.message}`);
  return lines.join('\n');
}
