/**
 * Which NVML XID events mark a device unhealthy: `health` in the file, then NVIDIA's environment
 * variables on top (internal/rm/health.go):
 *
 * - `DP_DISABLE_HEALTHCHECKS`: `all` or `xids` (anywhere in the list) turns XID health checks off;
 *   otherwise a comma-separated list of XIDs to ignore in addition to `health.disabledXids`.
 * - `DP_ENABLE_HEALTHCHECKS`: `all`/`xids` re-enables checks and ignores no XID at all (not even the
 *   default application XIDs); a list takes those XIDs out of the ignored set. It wins over disabling.
 *
 * Values are case-insensitive and trimmed; entries that are not unsigned decimal integers (`not-an-int`,
 * `-68`) are skipped with a warning, as NVIDIA skips them with a log line.
 */

export interface HealthCheckSettings {
  /** False: no XID monitoring at all. */
  enabled: boolean;
  /** XIDs that never mark a device unhealthy. Consulted only when `onlyXids` is null. */
  disabledXids: Set<number>;
  /**
   * Set when all checks were disabled (`DP_DISABLE_HEALTHCHECKS=all` or `health.enabled: false`) and
   * `DP_ENABLE_HEALTHCHECKS` named XIDs: only these mark a device unhealthy, every other XID is ignored.
   */
  onlyXids: Set<number> | null;
  /** Malformed entries that were skipped, for the log. */
  warnings: string[];
}

export interface ConfiguredHealth {
  enabled: boolean;
  disabledXids: readonly number[];
}

const DISABLE_HEALTHCHECKS_ENV = 'DP_DISABLE_HEALTHCHECKS';
const ENABLE_HEALTHCHECKS_ENV = 'DP_ENABLE_HEALTHCHECKS';

interface XidList {
  all: boolean;
  xids: Set<number>;
}

/** NVIDIA's newHealthCheckXIDs: `all`/`xids` win over the rest of the list; blanks are skipped. */
export function parseXidList(value: string | undefined, variable: string, warnings: string[]): XidList {
  const xids = new Set<number>();
  for (const entry of (value ?? '').toLowerCase().split(',')) {
    const item = entry.trim();
    if (item === 'all' || item === 'xids') return { all: true, xids: new Set() };
    if (item === '') continue;
    const xid = /^\d+$/.test(item) ? Number(item) : Number.NaN;
    if (Number.isSafeInteger(xid)) xids.add(xid);
    else warnings.push(`${variable}: ignoring malformed XID ${JSON.stringify(item)}`);
  }
  return { all: false, xids };
}

export function healthChecksFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  configured: ConfiguredHealth,
): HealthCheckSettings {
  const warnings: string[] = [];
  const disable = parseXidList(env[DISABLE_HEALTHCHECKS_ENV], DISABLE_HEALTHCHECKS_ENV, warnings);
  const enable = parseXidList(env[ENABLE_HEALTHCHECKS_ENV], ENABLE_HEALTHCHECKS_ENV, warnings);

  if (enable.all) return { enabled: true, disabledXids: new Set(), onlyXids: null, warnings };

  const allDisabled = !configured.enabled || disable.all;
  if (allDisabled) {
    // NVIDIA documents that enabling XIDs works even when all are disabled, but its checkHealth returns
    // early in that case; here the named XIDs are watched, as documented.
    if (enable.xids.size > 0)
      return { enabled: true, disabledXids: new Set(), onlyXids: enable.xids, warnings };
    return { enabled: false, disabledXids: new Set(), onlyXids: null, warnings };
  }

  const disabledXids = new Set([...configured.disabledXids, ...disable.xids]);
  for (const xid of enable.xids) disabledXids.delete(xid);
  return { enabled: true, disabledXids, onlyXids: null, warnings };
}

/** The part of the settings that decides an XID's fate. */
export type XidChecks = Readonly<Pick<HealthCheckSettings, 'enabled'>> & {
  readonly disabledXids: ReadonlySet<number>;
  readonly onlyXids?: ReadonlySet<number> | null;
};

/** Whether an XID event should leave the device healthy under these settings. */
export function isXidIgnored(settings: XidChecks, xid: number): boolean {
  if (!settings.enabled) return true;
  if (settings.onlyXids) return !settings.onlyXids.has(xid);
  return settings.disabledXids.has(xid);
}
