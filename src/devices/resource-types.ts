/** What the plugin advertises: the output of the pure core `(config, inventory) → resources`. */

/** The physical thing behind an advertised device: a whole GPU or a MIG device. */
export interface DeviceTarget {
  kind: 'gpu' | 'mig';
  /** GPU-… or MIG-… */
  uuid: string;
  /** NVIDIA's index form: `3` for a GPU, `3:1` for a MIG device (deviceIDStrategy=index) */
  index: string;
  /** UUID of the physical GPU (itself for a GPU): health fans out from it */
  gpuUuid: string;
  /** /dev nodes the container needs for this target (passDeviceSpecs) */
  deviceNodes: string[];
  numaNode: number | null;
  memoryMiB: number;
}

/** Per-slice limits enforced by HAMi-core inside the container (split mode). */
export interface SliceLimits {
  memoryMiB: number;
  corePercent: number;
}

export interface AdvertisedDevice {
  /** the ID kubelet sees: a UUID, or `<uuid>::<n>` for a replica or slice */
  id: string;
  target: DeviceTarget;
  /** replica or slice number, when the device is a share of its target */
  share?: number;
  slice?: SliceLimits;
}

/** `hami`: replicas whose GPU and limits HAMi's scheduler decides per pod (see src/hami/). */
export type SharingMode = 'exclusive' | 'time-slicing' | 'split' | 'hami';

export interface ResourceSpec {
  /** fully qualified: `nvidia.com/gpu`, `nvidia.com/mig-1g.5gb`, `nvidia.com/gpu.shared` */
  name: string;
  sharing: SharingMode;
  devices: AdvertisedDevice[];
  /** time-slicing: refuse a container asking for more than one replica (NVIDIA's flag) */
  failRequestsGreaterThanOne: boolean;
}
