/**
 * `nvidia.com/gpu` → `vgpu-gpu.sock`, `nvidia.com/mig-1g.10gb` → `vgpu-mig-1g.10gb.sock`. Other
 * domains keep their domain so two resources never share a socket: `example.com/gpu` →
 * `vgpu-example.com_gpu.sock`.
 */
export function socketNameFor(resourceName: string): string {
  const slash = resourceName.indexOf('/');
  const domain = resourceName.slice(0, slash);
  const name = resourceName.slice(slash + 1);
  return domain === 'nvidia.com' ? `vgpu-${name}.sock` : `vgpu-${domain}_${name}.sock`;
}
