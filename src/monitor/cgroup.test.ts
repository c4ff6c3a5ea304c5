/**
 * Every /proc/<pid>/cgroup shape the monitor must attribute (shared/reference/monitor.md §1b–1e), as
 * a table: the text a process shows → the pod, container and QoS class it belongs to.
 */
import { describe, expect, it } from 'vitest';
import { type PodContainerRef, parseCgroupPath, parseProcCgroup } from './cgroup.js';

const ID = '3f4e8a1b2c9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f';
const NODE_ID = 'aaaabbbbccccddddeeeeffff00001111222233334444555566667777888899990';
const UID = '48d25824-cbe2-4fdc-9928-5bb49e05473d';
const UID_ = UID.replaceAll('-', '_');
const INNER_UID = '897277d4-5e6f-4999-a976-b8340e8d075e';
const STATIC_HASH = 'd76e26fba3bf2bfd215eb29011d55250';

/** `containerId` null: the process is in the pod's own cgroup, not in a container's. */
const pod = (qos?: PodContainerRef['qos'], containerId: string | null = ID, podUid = UID) => {
  const ref: PodContainerRef = { podUid };
  if (containerId !== null) ref.containerId = containerId;
  if (qos) ref.qos = qos;
  return ref;
};

const v1Lines = (path: string) =>
  [
    '13:rdma:/',
    `12:pids:${path}`,
    `11:memory:${path}`,
    `9:cpu,cpuacct:${path}`,
    '5:devices:/',
    `1:name=systemd:${path}`,
    '',
  ].join('\n');

const cases: [string, string, PodContainerRef | undefined][] = [
  // cgroup v2, systemd driver
  [
    'v2 systemd containerd Burstable',
    `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
    pod('Burstable'),
  ],
  [
    'v2 systemd containerd Guaranteed',
    `0::/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
    pod('Guaranteed'),
  ],
  [
    'v2 systemd containerd BestEffort',
    `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
    pod('BestEffort'),
  ],
  [
    'v2 systemd CRI-O',
    `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope\n`,
    pod('BestEffort'),
  ],
  [
    'v2 systemd CRI-O conmon: the pod, no container',
    `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-conmon-${ID}.scope\n`,
    pod('BestEffort', null),
  ],
  [
    'v2 systemd cri-dockerd',
    `0::/kubepods.slice/kubepods-pod${UID_}.slice/docker-${ID}.scope\n`,
    pod('Guaranteed'),
  ],
  [
    'v2 systemd crun: the container scope has a /container child',
    `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope/container\n`,
    pod('Burstable'),
  ],
  // cgroup v2, cgroupfs driver
  ['v2 cgroupfs CRI-O', `0::/kubepods/besteffort/pod${UID}/crio-${ID}\n`, pod('BestEffort')],
  [
    'v2 cgroupfs CRI-O conmon',
    `0::/kubepods/besteffort/pod${UID}/crio-conmon-${ID}\n`,
    pod('BestEffort', null),
  ],
  ['v2 cgroupfs containerd Burstable', `0::/kubepods/burstable/pod${UID}/${ID}\n`, pod('Burstable')],
  ['v2 cgroupfs containerd Guaranteed', `0::/kubepods/pod${UID}/${ID}\n`, pod('Guaranteed')],
  // cgroup v1 and hybrid hosts
  ['v1 cgroupfs, one line per hierarchy', v1Lines(`/kubepods/besteffort/pod${UID}/${ID}`), pod('BestEffort')],
  [
    'v1 systemd',
    v1Lines(
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/docker-${ID}.scope`,
    ),
    pod('Burstable'),
  ],
  [
    'hybrid: the unified line names no pod, the v1 lines do',
    `${v1Lines(`/kubepods/burstable/pod${UID}/${ID}`)}0::/\n`,
    pod('Burstable'),
  ],
  // static pods: kubelet's config hash instead of a UUID
  [
    'static pod, cgroupfs',
    `0::/kubepods/besteffort/pod${STATIC_HASH}/${ID}\n`,
    pod('BestEffort', ID, STATIC_HASH),
  ],
  [
    'static pod, systemd',
    `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC_HASH}.slice/cri-containerd-${ID}.scope\n`,
    pod('Burstable', ID, STATIC_HASH),
  ],
  // cgroup namespaces: the path is relative to the reader's namespace root
  [
    'private cgroup namespace, systemd',
    `0::/../../kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
    pod('Burstable'),
  ],
  [
    'private cgroup namespace, Guaranteed pod',
    `0::/../../kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
    pod('Guaranteed'),
  ],
  [
    'private cgroup namespace, cgroupfs: the QoS part is cut off',
    `0::/../../pod${UID}/${ID}\n`,
    pod(undefined),
  ],
  // kind
  [
    'kind (cgroupRoot /kubelet, systemd)',
    `0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
    pod('Burstable'),
  ],
  [
    'kind without a cgroup namespace: the node container is above the pod',
    `0::/system.slice/docker-${NODE_ID}.scope/kubepods/besteffort/pod${UID}/${ID}\n`,
    pod('BestEffort'),
  ],
  [
    "kind without a cgroup namespace, a process in the pod's own cgroup: not the node's container id",
    `0::/system.slice/docker-${NODE_ID}.scope/kubepods/besteffort/pod${UID}\n`,
    pod('BestEffort', null),
  ],
  [
    'kind inside a pod: the innermost pod wins',
    `0::/kubepods/burstable/pod${UID}/${NODE_ID}/kubepods/besteffort/pod${INNER_UID}/${ID}\n`,
    pod('BestEffort', ID, INNER_UID),
  ],
  // not Kubernetes
  ['a host service', '0::/system.slice/nvidia-persistenced.service\n', undefined],
  ['a login session', '0::/user.slice/user-1000.slice/session-3.scope\n', undefined],
  ['the root cgroup', '0::/\n', undefined],
  ['Docker outside Kubernetes', `0::/system.slice/docker-${ID}.scope\n`, undefined],
  ['podman', `0::/machine.slice/libpod-${ID}.scope/container\n`, undefined],
  ['podman pod', `0::/machine.slice/machine-libpod_pod_${ID}.slice/libpod-${ID}.scope\n`, undefined],
  ['empty', '', undefined],
  ['not cgroup text', 'garbage\nmore garbage\n', undefined],
];

describe('parseProcCgroup', () => {
  it.each(cases)('%s', (_name, text, expected) => {
    expect(parseProcCgroup(text)).toEqual(expected);
  });

  it('does not take a pod-looking name that is only part of a component', () => {
    expect(parseCgroupPath(`/system.slice/mypod${UID}x.service`)).toBeUndefined();
    expect(parseCgroupPath(`/kubepods/besteffort/pod${UID.slice(0, 30)}/${ID}`)).toBeUndefined();
  });

  it('keeps colons inside the path', () => {
    expect(parseProcCgroup(`0::/weird:dir/kubepods/pod${UID}/${ID}\n`)).toEqual(pod('Guaranteed'));
  });
});
