/**
 * The effective config written back in the file's own syntax (`devices: all`, no `rename: null`), so
 * what `config check` prints and the agent logs can be pasted into a ConfigMap as is.
 */
import type { DeviceRef, DeviceSelection } from './devices.js';
import type { EffectiveConfig, HamiSettings } from './schema.js';

function devicesInFileForm(selection: DeviceSelection): string | number | (string | number)[] {
  switch (selection.type) {
    case 'all':
      return 'all';
    case 'count':
      return selection.count;
    case 'list':
      return selection.devices.map((ref: DeviceRef) =>
        ref.type === 'index' ? ref.index : ref.type === 'mig-index' ? `${ref.gpu}:${ref.mig}` : ref.uuid,
      );
  }
}

function sharedResourceInFileForm<T extends { rename: string | null; devices: DeviceSelection }>(
  resource: T,
) {
  const { rename, devices, ...rest } = resource;
  return { ...rest, ...(rename === null ? {} : { rename }), devices: devicesInFileForm(devices) };
}

/** An unset log level is left out rather than written as null (null reads back as "not set" anyway). */
function hamiInFileForm(hami: HamiSettings) {
  const { libCudaLogLevel, ...rest } = hami;
  return { ...rest, ...(libCudaLogLevel === null ? {} : { libCudaLogLevel: Number(libCudaLogLevel) }) };
}

export function configInFileForm(config: EffectiveConfig): unknown {
  const { timeSlicing, split, hami } = config.sharing;
  // An empty section is an error in the file ("no resources specified"): leave it out instead.
  return {
    ...config,
    sharing: {
      ...(timeSlicing.resources.length > 0
        ? { timeSlicing: { ...timeSlicing, resources: timeSlicing.resources.map(sharedResourceInFileForm) } }
        : {}),
      ...(split.resources.length > 0
        ? { split: { ...split, resources: split.resources.map(sharedResourceInFileForm) } }
        : {}),
      ...(hami ? { hami: hamiInFileForm(hami) } : {}),
    },
  };
}
