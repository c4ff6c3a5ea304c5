/**
 * How many bytes kubelet receives for one resource's device list, from device counts and ID lengths
 * alone, so a config whose list kubelet would drop is refused before a single device is built.
 * Kubelet reads every ListAndWatch message through a grpc-go client that keeps gRPC's default receive
 * limit (4 MiB per message); a larger list ends kubelet's stream with 0 devices while the plugin
 * believes it is registered.
 */
import { Buffer } from 'node:buffer';
import type { DeviceTarget } from './resource-types.js';

/** grpc-go's default largest received message; kubelet's device plugin client does not raise it. */
export const KUBELET_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * The most one resource's ListAndWatch message may take: 3.5 MiB. The sizes below are already upper
 * bounds (every device counted Unhealthy, the longer health value); the spare eighth of kubelet's
 * limit is for what they cannot foresee, such as a field a later API version adds to Device.
 */
export const DEVICE_LIST_LIMIT_BYTES = (KUBELET_MAX_MESSAGE_BYTES / 8) * 7;

/** Bytes of a protobuf varint holding `value` (an int64 below zero always takes 10). */
function varintBytes(value: number): number {
  if (value < 0) return 10;
  let bytes = 1;
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) bytes++;
  return bytes;
}

/** A length-delimited field (string or message) of `length` bytes: tag, length, content. */
const delimitedBytes = (length: number) => 1 + varintBytes(length) + length;

const LONGEST_HEALTH = 'Unhealthy'.length;

/**
 * One entry of ListAndWatchResponse.devices: Device{ID, health, topology{nodes: [{ID: numaNode}]}},
 * with the field tags and lengths protobuf adds.
 */
export function deviceEntryBytes(idBytes: number, numaNode: number | null): number {
  const numa = numaNode === null ? 0 : delimitedBytes(delimitedBytes(1 + varintBytes(numaNode)));
  return delimitedBytes(delimitedBytes(idBytes) + delimitedBytes(LONGEST_HEALTH) + numa);
}

/** The entries of one target advertised whole (`shares` null) or as shares `<uuid>::0` … `<uuid>::<shares-1>`. */
export function targetListBytes(target: DeviceTarget, shares: number | null): number {
  const uuidBytes = Buffer.byteLength(target.uuid);
  if (shares === null) return deviceEntryBytes(uuidBytes, target.numaNode);
  // Shares with as many digits have IDs of one length: one multiplication per digit count.
  let total = 0;
  for (let digits = 1, from = 0; from < shares; digits++) {
    const to = Math.min(shares, 10 ** digits);
    total += (to - from) * deviceEntryBytes(uuidBytes + '::'.length + digits, target.numaNode);
    from = to;
  }
  return total;
}

/** `3670016 bytes (3.5 MiB)`. */
export function bytesText(bytes: number): string {
  return `${bytes} bytes (${Number((bytes / 1024 / 1024).toFixed(2))} MiB)`;
}
