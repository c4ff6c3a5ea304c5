/**
 * Which Kubernetes pod and container a process belongs to, read from its /proc/<pid>/cgroup text.
 *
 * Pure: text in, { podUid, containerId, qos } out. It takes every shape kubelet and the runtimes
 * build (docs/design.md, "Attribution"): cgroup v1 and v2, the systemd and cgroupfs drivers
 * (`kubepods-burstable-pod<uid_>.slice` vs `kubepods/burstable/pod<uid>`), containerd, CRI-O and
 * cri-dockerd leaves (`cri-containerd-<id>.scope`, `crio-<id>`, `docker-<id>.scope`, a bare `<id>`),
 * `/../` prefixes a cgroup namespace leaves, crun's `/container` child under the container's scope,
 * kind nodes nested inside a container (the last pod in the path wins), and static pods, whose
 * cgroup carries kubelet's 32-hex config hash instead of a UUID. Nothing is anchored at the root.
 */

/** Kubernetes' QoS classes, spelled as in `status.qosClass`. */
export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

export interface PodContainerRef {
  /** `metadata.uid` (dashes), or a static pod's 32-hex `kubernetes.io/config.hash` */
  podUid: string;
  /** 64 hex digits, as in `containerStatuses[].containerID` after `<runtime>://`; absent when the
   * process sits in the pod's own cgroup */
  containerId?: string;
  /** absent when a cgroup namespace hides the part of the path that says it */
  qos?: QosClass;
}

/** One path component naming a pod: `pod<uid>` (cgroupfs) or `…-pod<uid_>.slice` (systemd). */
const POD_COMPONENT =
  /^(?:.*-)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?$/;
/** One path component naming a container. `crio-conmon-<id>` (CRI-O's monitor process) never matches. */
const CONTAINER_COMPONENT = /^(?:cri-containerd-|crio-|docker-)?([0-9a-f]{64})(?:\.scope)?$/;
/** The QoS part of a systemd pod slice: `kubepods-burstable-pod…`; `kubepods-pod…` is Guaranteed. */
const SYSTEMD_POD_QOS = /(?:^|-)kubepods-(?:(burstable|besteffort)-)?pod/;

const QOS_BY_NAME: Record<string, QosClass> = { burstable: 'Burstable', besteffort: 'BestEffort' };

/**
 * The pod and container of a process from its /proc/<pid>/cgroup, or undefined when no line names a
 * pod (a process outside Kubernetes). Lines are tried in order: the unified (v2) hierarchy, then v1's
 * memory, cpu/cpuacct and name=systemd, then any other; the first that names a pod is used.
 */
export function parseProcCgroup(text: string): PodContainerRef | undefined {
  const lines = text
    .split('\n')
    .map(parseLine)
    .filter((line): line is CgroupLine => line !== undefined);
  lines.sort((a, b) => linePriority(a) - linePriority(b));
  for (const line of lines) {
    const ref = parseCgroupPath(line.path);
    if (ref) return ref;
  }
  return undefined;
}

/** The pod and container a single cgroup path names (any driver, runtime or namespace prefix). */
export function parseCgroupPath(path: string): PodContainerRef | undefined {
  const components = path.split('/').filter((c) => c !== '' && c !== '.' && c !== '..');
  const podIndex = components.findLastIndex((c) => POD_COMPONENT.test(c));
  if (podIndex < 0) return undefined;
  const podComponent = components[podIndex]!;
  const ref: PodContainerRef = { podUid: POD_COMPONENT.exec(podComponent)![1]!.replaceAll('_', '-') };
  // Only below the pod: a kind node's own `docker-<id>.scope` sits above it.
  const below = components.slice(podIndex + 1);
  const containerIndex = below.findLastIndex((c) => CONTAINER_COMPONENT.test(c));
  if (containerIndex >= 0) ref.containerId = CONTAINER_COMPONENT.exec(below[containerIndex]!)![1]!;
  const qos = qosOf(podComponent, components[podIndex - 1]);
  if (qos) ref.qos = qos;
  return ref;
}

/** systemd names the class in the pod slice; cgroupfs in the pod's parent directory. */
function qosOf(podComponent: string, parent: string | undefined): QosClass | undefined {
  const systemd = SYSTEMD_POD_QOS.exec(podComponent);
  if (systemd) return systemd[1] ? QOS_BY_NAME[systemd[1]] : 'Guaranteed';
  if (parent === undefined) return undefined;
  if (parent === 'kubepods') return 'Guaranteed';
  return QOS_BY_NAME[parent];
}

interface CgroupLine {
  controllers: string[];
  path: string;
}

/** `hierarchy-ID:controller-list:path`; the path itself may contain colons. */
function parseLine(line: string): CgroupLine | undefined {
  const first = line.indexOf(':');
  const second = first < 0 ? -1 : line.indexOf(':', first + 1);
  if (second < 0) return undefined;
  const controllers = line.slice(first + 1, second);
  return { controllers: controllers === '' ? [] : controllers.split(','), path: line.slice(second + 1) };
}

function linePriority(line: CgroupLine): number {
  if (line.controllers.length === 0) return 0; // `0::` unified hierarchy
  if (line.controllers.includes('memory')) return 1;
  if (line.controllers.includes('cpu') || line.controllers.includes('cpuacct')) return 2;
  if (line.controllers.includes('name=systemd')) return 3;
  return 4;
}
