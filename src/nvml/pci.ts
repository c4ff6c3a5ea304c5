/**
 * NVML writes bus ids as `%08X:%02X:%02X.0` (`00000000:07:00.0`); sysfs, the kernel and kubelet's
 * topology use `%04x:%02x:%02x.%x` (`0000:07:00.0`). Everything in the agent uses the sysfs form.
 */
export function toSysfsBusId(nvmlBusId: string): string {
  const match = /^([0-9a-fA-F]+):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/.exec(nvmlBusId.trim());
  if (!match) return nvmlBusId.trim().toLowerCase();
  const [, domain, bus, device, fn] = match as unknown as [string, string, string, string, string];
  const hex = (s: string, width: number) => Number.parseInt(s, 16).toString(16).padStart(width, '0');
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(device, 2)}.${fn}`;
}
