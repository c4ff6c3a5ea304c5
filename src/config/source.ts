/**
 * The live configuration: selects this node's config from a file or a mounted ConfigMap directory,
 * validates it, and follows kubelet's updates of the mount. A config that fails validation never
 * replaces the one being served; consumers hear about valid changes (`change`) and rejected ones
 * (`invalid`).
 */
import { EventEmitter } from 'node:events';
import { readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { Result } from '../result.js';
import { boundLines, formatIssue } from './errors.js';
import { configHash } from './hash.js';
import { loadConfigFile } from './load.js';
import type { EffectiveConfig } from './schema.js';
import {
  type ConfigLocation,
  type ConfigSelection,
  configKeys,
  type SelectionInput,
  type SelectionReason,
  selectConfig,
} from './select.js';
import type { OverrideResult } from './settings.js';

/** The config being served, and where it came from. */
export interface LoadedConfig {
  config: EffectiveConfig;
  /** the ConfigMap key (or the file's base name) */
  name: string;
  /** the path it was read through */
  file: string;
  reason: SelectionReason;
  /** `configHash` of `config` (after overrides) */
  hash: string;
  /** formatted lines: keys accepted without effect, YAML remarks */
  warnings: string[];
}

export interface ConfigChange {
  previous: LoadedConfig;
  current: LoadedConfig;
}

export interface InvalidConfig {
  /** the config that was rejected; undefined when no key could be chosen at all */
  name: string | undefined;
  /** formatted lines, each naming the file, the path in the document and what was expected */
  issues: string[];
}

/** Re-applies the command-line/environment overrides to every config read (they win over the file). */
export type ApplyOverrides = (config: EffectiveConfig) => OverrideResult;

export interface LoadRequest extends SelectionInput {
  /** `--config` / `CONFIG_FILE`: a file or a mounted ConfigMap directory */
  path: string;
  overrides?: ApplyOverrides | undefined;
  /**
   * Checks beyond the file format, run on the final config: e.g. that it applies to this node's devices
   * (MIG layout, device lists). Returned lines make the config invalid, so it never replaces a good one.
   */
  validate?: ((config: EffectiveConfig) => string[]) | undefined;
}

export type LoadOutcome = Result<LoadedConfig, InvalidConfig>;

/** The first load failed: the CLI prints `issues` and exits 2. */
export class ConfigLoadError extends Error {
  override readonly name = 'ConfigLoadError';
  constructor(readonly issues: string[]) {
    super(issues.join('\n'));
  }
}

/**
 * What the config path is. A directory's keys are its entries that do not start with a dot and resolve
 * to something other than a directory; a key whose link dangles (kubelet removes the stale link right
 * after switching `..data`) has vanished.
 */
export async function locateConfig(configPath: string): Promise<Result<ConfigLocation, string>> {
  try {
    const info = await stat(configPath);
    if (!info.isDirectory()) return { ok: true, value: { kind: 'file', path: configPath } };
    const names = configKeys(await readdir(configPath));
    const usable = await Promise.all(names.map((name) => isKey(path.join(configPath, name))));
    return {
      ok: true,
      value: { kind: 'directory', path: configPath, keys: names.filter((_, i) => usable[i]) },
    };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'not found (expected a config file or a mounted ConfigMap directory)'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : `cannot read: ${errorMessage(error)}`;
    return { ok: false, error: `${configPath}: ${why}` };
  }
}

async function isKey(entry: string): Promise<boolean> {
  try {
    return !(await stat(entry)).isDirectory();
  } catch (error) {
    // Unreadable keys stay, so that choosing one reports why it cannot be read.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Selects, reads, validates and applies the overrides: one attempt, every problem as a line. */
export async function loadSelectedConfig(request: LoadRequest): Promise<LoadOutcome> {
  const located = await locateConfig(request.path);
  if (!located.ok) return invalid(undefined, [located.error]);
  const selected = selectConfig(located.value, request);
  if (!selected.ok) return invalid(request.configName ?? request.nodeLabel, [selected.error]);
  return loadSelection(selected.value, request);
}

async function loadSelection(
  selection: ConfigSelection,
  { overrides, validate }: Pick<LoadRequest, 'overrides' | 'validate'>,
): Promise<LoadOutcome> {
  const { name, file, reason } = selection;
  const parsed = await loadConfigFile(file);
  if (!parsed.ok) return invalid(name, parsed.error.map(formatIssue));
  let { config } = parsed.value;
  if (overrides) {
    const applied = overrides(config);
    if (!applied.ok) return invalid(name, applied.error);
    config = applied.value;
  }
  const problems = validate?.(config) ?? [];
  if (problems.length > 0)
    return invalid(
      name,
      problems.map((p) => `${file}: ${p}`),
    );
  return {
    ok: true,
    value: { config, name, file, reason, hash: configHash(config), warnings: parsed.value.warnings },
  };
}

function invalid(name: string | undefined, issues: string[]): LoadOutcome {
  return { ok: false, error: { name, issues } };
}

export interface ConfigSourceOptions extends LoadRequest {
  logger: Logger;
  /**
   * Quiet time after the last file event before re-reading a file edited in place, which may take
   * several writes. Atomic replacements (kubelet's `..data` swap, a rename over the file) are re-read
   * at once: the new content is complete when its name appears.
   */
  debounceMs?: number;
  /** periodic re-read, in case an event was missed (odd filesystems, inotify limits) */
  resyncIntervalMs?: number;
}

type ConfigSourceEvents = { change: [ConfigChange]; invalid: [InvalidConfig] };

const DEFAULT_DEBOUNCE_MS = 100;
/** The link kubelet's AtomicWriter renames into place to switch a ConfigMap volume to new content. */
const DATA_LINK = '..data';
/**
 * chokidar drops a second `change` of one path within 50 ms of the first (no trailing event), so two
 * swaps in quick succession would leave the second unseen until the periodic re-read: each swap's
 * re-read is followed by one more this much later.
 */
const RECHECK_AFTER_SWAP_MS = 100;
/** A reload that failed while the volume was being swapped reads again, up to this many times in all. */
const MAX_READS_PER_RELOAD = 3;

export class ConfigSource extends EventEmitter<ConfigSourceEvents> {
  private watcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** reloads run one at a time; `queued` is the next one, shared by every request made before it starts */
  private chain: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  /** the last rejection, so a periodic re-read of the same broken file does not repeat it */
  private lastRejection: string | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private watchKind: ConfigLocation['kind'] = 'file';
  /** `--config` as a file: which file (device and inode) the last reload read, to tell a rename over it */
  private readIdentity: string | undefined;

  private constructor(
    private readonly options: ConfigSourceOptions,
    private loaded: LoadedConfig,
    private label: string | undefined,
  ) {
    super();
  }

  /** Loads the selected config and starts following updates. Throws `ConfigLoadError` when invalid. */
  static async open(options: ConfigSourceOptions): Promise<ConfigSource> {
    const first = await loadSelectedConfig(options);
    if (!first.ok) throw new ConfigLoadError(first.error.issues);
    const loaded = first.value;
    const source = new ConfigSource(options, loaded, options.nodeLabel);
    const { logger } = options;
    logger.info(
      {
        config: loaded.name,
        file: loaded.file,
        reason: loaded.reason,
        hash: loaded.hash,
      },
      `config ${loaded.name} loaded (${loaded.hash})`,
    );
    const warnings = boundLines(loaded.warnings);
    for (const warning of warnings.shown) logger.warn({ config: loaded.name }, warning);
    if (warnings.omitted > 0) {
      logger.warn({ config: loaded.name }, `${warnings.omitted} more warnings not shown`);
    }
    await source.startWatching(loaded.reason === 'file' ? 'file' : 'directory');
    // An update between the first read and the watch being ready would otherwise wait for the re-read.
    void source.reload();
    return source;
  }

  get current(): LoadedConfig {
    return this.loaded;
  }

  get nodeLabel(): string | undefined {
    return this.label;
  }

  /** The node label changed (read through the API): re-select now. Resolves when that reload is done. */
  setNodeLabel(value: string | undefined): Promise<void> {
    if (value === this.label || this.closed) return Promise.resolve();
    this.options.logger.info(
      { label: value ?? null, previousLabel: this.label ?? null },
      `node config label is now ${value === undefined ? 'unset' : value}`,
    );
    this.label = value;
    return this.reload();
  }

  /** Re-selects and re-reads now (also what file events and the periodic re-read do, debounced). */
  reload(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.queued) return this.queued;
    const next = this.chain.then(() => {
      this.queued = undefined;
      return this.reloadNow();
    });
    this.queued = next;
    this.chain = next;
    return next;
  }

  /** Stops watching and re-reading; no event is emitted once this resolves. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounceTimer);
    clearTimeout(this.recheckTimer);
    clearInterval(this.resyncTimer);
    this.debounceTimer = undefined;
    this.recheckTimer = undefined;
    this.resyncTimer = undefined;
    await this.watcher?.close();
    this.watcher = undefined;
    await this.chain;
  }

  private async startWatching(kind: ConfigLocation['kind']): Promise<void> {
    const { path: configPath, resyncIntervalMs = 60_000 } = this.options;
    this.watchKind = kind;
    if (kind === 'file') this.readIdentity = await identityOf(configPath);
    const isDirectory = kind === 'directory';
    const root = path.resolve(configPath);
    // Directory: kubelet switches `..data` atomically and the key links never change, so watch the
    // directory's own entries (keys may appear or vanish) and `..data`, without following the links.
    // File: chokidar turns an atomic rename over it into one `change`.
    const watcher = isDirectory
      ? watch(configPath, {
          ignoreInitial: true,
          followSymlinks: false,
          depth: 0,
          ignored: (p: string) => {
            const base = path.basename(p);
            return path.resolve(p) !== root && base.startsWith('.') && base !== DATA_LINK;
          },
        })
      : watch(configPath, { ignoreInitial: true });
    watcher.on('all', (_event, changed) => this.onFileEvent(changed));
    watcher.on('error', (error) =>
      this.options.logger.warn(
        { err: error, file: configPath },
        'config watch error; relying on the periodic re-read',
      ),
    );
    await new Promise<void>((resolve) => watcher.once('ready', resolve));
    this.watcher = watcher;
    this.resyncTimer = setInterval(() => void this.reload(), resyncIntervalMs);
    this.resyncTimer.unref();
  }

  /**
   * An atomic replacement is re-read at once; anything else (an in-place edit, a key appearing or
   * vanishing) after the debounce, so that a file still being written is not read half-way.
   */
  private onFileEvent(changed: string): void {
    if (this.closed) return;
    if (this.watchKind === 'directory') {
      if (path.basename(changed) === DATA_LINK) this.reloadAtOnce();
      else this.scheduleReload();
      return;
    }
    void identityOf(this.options.path).then((now) => {
      if (now !== this.readIdentity) this.reloadAtOnce();
      else this.scheduleReload();
    });
  }

  /** The reload it starts reads everything a pending debounced one would, so that one is dropped. */
  private reloadAtOnce(): void {
    if (this.closed) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    void this.reload();
    clearTimeout(this.recheckTimer);
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = undefined;
      void this.reload();
    }, RECHECK_AFTER_SWAP_MS);
  }

  private scheduleReload(): void {
    if (this.closed) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.reload();
    }, this.options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
  }

  private async reloadNow(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) return;
      // Taken before reading: a replacement landing during the read then shows as a new version.
      const version = await this.volumeVersion();
      if (this.watchKind === 'file') this.readIdentity = version;
      const outcome = await this.loadOnce();
      if (this.closed) return;
      if (outcome.ok) return this.accept(outcome.value);
      // Keys listed before a swap and read after it can look missing: read again rather than report that.
      if (attempt < MAX_READS_PER_RELOAD && (await this.volumeVersion()) !== version) continue;
      return this.reject(outcome.error);
    }
  }

  private async loadOnce(): Promise<LoadOutcome> {
    try {
      return await loadSelectedConfig({ ...this.options, nodeLabel: this.label });
    } catch (error) {
      // Only a throwing overrides or validate function gets here; treat it like any other rejected config.
      const message = errorMessage(error);
      return invalid(this.loaded.name, [`${this.options.path}: ${message}`]);
    }
  }

  /** What changes with each atomic update: the file's identity, or where a ConfigMap's `..data` points. */
  private volumeVersion(): Promise<string | undefined> {
    if (this.watchKind === 'file') return identityOf(this.options.path);
    return readlink(path.join(this.options.path, DATA_LINK)).catch(() => undefined);
  }

  private accept(next: LoadedConfig): void {
    const { logger } = this.options;
    const previous = this.loaded;
    this.lastRejection = undefined;
    if (next.hash === previous.hash) {
      if (next.name !== previous.name || next.file !== previous.file) {
        // Another key with the same content: nothing to apply, but say which key is in use now.
        this.loaded = next;
        logger.info(
          { config: next.name, previousConfig: previous.name, hash: next.hash, reason: next.reason },
          `config ${next.name} selected (same content as ${previous.name}, ${next.hash})`,
        );
      } else {
        logger.debug({ config: next.name, hash: next.hash }, `config ${next.name} unchanged`);
      }
      return;
    }
    this.loaded = next;
    const warnings = boundLines(next.warnings);
    logger.info(
      {
        config: next.name,
        previousConfig: previous.name,
        hash: next.hash,
        previousHash: previous.hash,
        file: next.file,
        reason: next.reason,
        warnings: warnings.shown,
        ...(warnings.omitted > 0 ? { warningsNotShown: warnings.omitted } : {}),
      },
      `config ${next.name} applied (${previous.hash} → ${next.hash})`,
    );
    this.emitSafely('change', () => this.emit('change', { previous, current: next }));
  }

  /**
   * One bounded line per rejection: the first issues, each cut short, and how many were left out. A
   * rejected file can be 1 MiB of problems; its text must not end up in the log whole, nor twice.
   */
  private reject(invalid: InvalidConfig): void {
    const { logger } = this.options;
    const key = JSON.stringify([invalid.name, invalid.issues]);
    const serving = `still serving ${this.loaded.name} (${this.loaded.hash})`;
    const count = invalid.issues.length;
    const problems = `${count} ${count === 1 ? 'problem' : 'problems'}`;
    if (key === this.lastRejection) {
      logger.debug(
        { config: invalid.name, issueCount: count },
        `config still invalid (${problems}); ${serving}`,
      );
      return;
    }
    this.lastRejection = key;
    const { shown, omitted } = boundLines(invalid.issues);
    logger.error(
      { config: invalid.name, issues: shown, ...(omitted > 0 ? { issuesNotShown: omitted } : {}) },
      `config update rejected (${problems}); ${serving}`,
    );
    this.emitSafely('invalid', () => this.emit('invalid', { name: invalid.name, issues: invalid.issues }));
  }

  /** A listener that throws must not turn a good reload into an unhandled rejection. */
  private emitSafely(event: keyof ConfigSourceEvents, emit: () => void): void {
    try {
      emit();
    } catch (error) {
      this.options.logger.error({ err: error, event }, `a config '${event}' listener failed`);
    }
  }
}

/** Device and inode of the file `file` resolves to; undefined when it cannot be found. */
async function identityOf(file: string): Promise<string | undefined> {
  try {
    const info = await stat(file);
    return `${info.dev}:${info.ino}`;
  } catch {
    return undefined;
  }
}
