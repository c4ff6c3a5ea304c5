/**
 * Whether the monitor shares the PID namespace of the /proc it attributes processes with (the host's,
 * `--host-proc`). Since driver 535.113 NVML returns PIDs in the *caller's* PID namespace and leaves
 * out the processes it cannot see there, so without `hostPID: true` the monitor sees only its own
 * pod's processes, under PIDs the host /proc does not know.
 *
 * What can be read without privileges decides the method: `<proc>/1/ns/pid` names the namespace of
 * that /proc's init, but reading another process's namespace link needs ptrace access (denied even to
 * root once capabilities are dropped), so when it cannot be read the monitor's own PID as that /proc
 * sees it (`<proc>/self`) is compared with its PID in its own namespace. When `--host-proc` is the
 * monitor's own /proc both answers are trivially yes; then the only question is whether its namespace
 * is the kernel's initial one, whose inode is fixed (PROC_PID_INIT_INO).
 */
import { readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../errors.js';

/** `readlink /proc/self/ns/pid` in the kernel's initial PID namespace (PROC_PID_INIT_INO, 0xEFFFFFFC). */
export const INITIAL_PID_NAMESPACE = 'pid:[4026531836]';

export interface PidNamespaceCheck {
  /** true: NVML's PIDs are those of the host /proc; undefined: it cannot be told */
  shared: boolean | undefined;
  /** how it was decided, for the log */
  method: string;
}

export interface PidNamespaceOptions {
  /** the host's /proc as the monitor sees it (`--host-proc`) */
  hostProc: string;
  /** the monitor's own /proc; default `/proc` */
  ownProc?: string;
  /** the monitor's PID in its own namespace; default process.pid */
  pid?: number;
}

export async function checkHostPidNamespace(options: PidNamespaceOptions): Promise<PidNamespaceCheck> {
  const { hostProc, ownProc = '/proc', pid = process.pid } = options;
  let own: string;
  try {
    own = await readlink(path.join(ownProc, 'self/ns/pid'));
  } catch (err) {
    return { shared: undefined, method: `cannot read ${ownProc}/self/ns/pid: ${errorMessage(err)}` };
  }
  if (await sameDirectory(hostProc, ownProc)) {
    return {
      shared: own === INITIAL_PID_NAMESPACE,
      method: `${hostProc} is the monitor's own /proc; its PID namespace ${own} is ${own === INITIAL_PID_NAMESPACE ? '' : 'not '}the initial one`,
    };
  }
  const hostInit = await readLinkOrUndefined(path.join(hostProc, '1/ns/pid'));
  if (hostInit !== undefined) {
    return { shared: hostInit === own, method: `${hostProc}/1/ns/pid is ${hostInit}, the monitor's ${own}` };
  }
  const self = await readLinkOrUndefined(path.join(hostProc, 'self'));
  if (self !== undefined) {
    return {
      shared: self === String(pid),
      method: `${hostProc}/self is ${self}, the monitor's own PID ${pid}`,
    };
  }
  return { shared: undefined, method: `neither ${hostProc}/1/ns/pid nor ${hostProc}/self can be read` };
}

async function readLinkOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await readlink(file);
  } catch {
    return undefined; // EACCES without ptrace access, ENOENT on a /proc that is not one
  }
}

async function sameDirectory(a: string, b: string): Promise<boolean> {
  try {
    return (await realpath(a)) === (await realpath(b));
  } catch {
    return false;
  }
}
