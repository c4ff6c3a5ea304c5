import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, open as openFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { applyOverrides } from '../../src/config/settings.js';
import {
  type ConfigChange,
  ConfigLoadError,
  ConfigSource,
  type ConfigSourceOptions,
  type InvalidConfig,
} from '../../src/config/source.js';
import { createLogger, type Logger } from '../../src/log.js';
import { ConfigMapVolume } from './configmap-volume.js';

const timeSliced = (replicas: number) =>
  `version: v1\nsharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n        replicas: ${replicas}\n`;
const replicasOf = (source: ConfigSource) => source.current.config.sharing.timeSlicing.resources[0]?.replicas;
const replicasIn = (change: ConfigChange) => change.current.config.sharing.timeSlicing.resources[0]?.replicas;
const NOT_REGULAR = 'not a regular file (a config must be a regular file or a link to one)';
/** A debounce no test waits for: a change that arrives anyway came through the at-once path. */
const NEVER_MS = 600_000;

/** Puts a FIFO at `file` (in place of what was there). */
async function fifoAt(file: string): Promise<void> {
  const fifo = `${file}.fifo`;
  execFileSync('mkfifo', [fifo]);
  await rename(fifo, file);
}

/** A debug logger whose lines the test can read. */
interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

function collectingLogger(): { logger: Logger; lines: LogLine[]; raw: string[] } {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line));
      }
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines, raw };
}

/** Every event a source emits, in order. */
function record(source: ConfigSource): { events: (['change', ConfigChange] | ['invalid', InvalidConfig])[] } {
  const recorded: { events: (['change', ConfigChange] | ['invalid', InvalidConfig])[] } = { events: [] };
  source.on('change', (c) => recorded.events.push(['change', c]));
  source.on('invalid', (i) => recorded.events.push(['invalid', i]));
  return recorded;
}

function next<K extends 'change' | 'invalid'>(
  source: ConfigSource,
  event: K,
  timeoutMs = 10_000,
): Promise<K extends 'change' ? ConfigChange : InvalidConfig> {
  type Value = K extends 'change' ? ConfigChange : InvalidConfig;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms`)), timeoutMs);
    const emitter = source as unknown as NodeJS.EventEmitter;
    emitter.once(event, (value: Value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** Waits until the source has logged `count` more reload outcomes matching `pattern` than before. */
async function reloadsLogged(lines: { msg: string }[], pattern: RegExp, count = 1): Promise<void> {
  const before = lines.filter((l) => pattern.test(l.msg)).length;
  await expect
    .poll(() => lines.filter((l) => pattern.test(l.msg)).length, { timeout: 10_000 })
    .toBeGreaterThanOrEqual(before + count);
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function volume(payload: Record<string, string>): Promise<ConfigMapVolume> {
  const v = await ConfigMapVolume.create(payload);
  cleanups.push(() => v.remove());
  return v;
}

async function open(
  options: Omit<ConfigSourceOptions, 'logger'> & { logger?: Logger },
): Promise<ConfigSource> {
  const source = await ConfigSource.open({ logger: collectingLogger().logger, ...options });
  cleanups.push(() => source.close());
  return source;
}

describe('ConfigSource on a ConfigMap directory (kubelet AtomicWriter updates)', () => {
  it('applies changes, ignores identical rewrites, keeps the last good config', async () => {
    const mount = await volume({ 'config.yaml': timeSliced(2) });
    const { logger, lines } = collectingLogger();
    const source = await open({ path: mount.dir, logger });
    const recorded = record(source);
    expect(source.current).toMatchObject({
      name: 'config.yaml',
      reason: 'only',
      file: path.join(mount.dir, 'config.yaml'),
    });
    expect(replicasOf(source)).toBe(2);
    const firstHash = source.current.hash;

    // A changed replica count.
    let changed = next(source, 'change');
    await mount.write({ 'config.yaml': timeSliced(4) });
    const change = await changed;
    expect(change.previous.hash).toBe(firstHash);
    expect(change.current.hash).not.toBe(firstHash);
    expect(change.current.config.sharing.timeSlicing.resources[0]?.replicas).toBe(4);
    expect(source.current).toBe(change.current);
    expect(
      lines.some(
        (l) =>
          l.level === 30 && l.msg === `config config.yaml applied (${firstHash} → ${change.current.hash})`,
      ),
    ).toBe(true);

    // The same content again, twice: re-read, nothing emitted.
    for (let i = 0; i < 2; i++) {
      const unchanged = reloadsLogged(lines, /^config config\.yaml unchanged$/);
      await mount.write({ 'config.yaml': timeSliced(4) });
      await unchanged;
    }
    expect(recorded.events.map(([e]) => e)).toEqual(['change']);

    // An invalid update: reported, and the good config stays.
    const rejected = next(source, 'invalid');
    await mount.write({ 'config.yaml': timeSliced(1) });
    expect(await rejected).toEqual({
      name: 'config.yaml',
      issues: [
        `${path.join(mount.dir, 'config.yaml')}: sharing.timeSlicing.resources[0].replicas: number of replicas must be >= 2 (got 1)`,
      ],
    });
    expect(replicasOf(source)).toBe(4);
    expect(lines.filter((l) => l.level === 50)).toEqual([
      expect.objectContaining({
        msg: `config update rejected (1 problem); still serving config.yaml (${change.current.hash})`,
        issues: [expect.stringContaining('number of replicas must be >= 2 (got 1)')],
      }),
    ]);

    // Fixed: applies, and the previous config is the last good one.
    changed = next(source, 'change');
    await mount.write({ 'config.yaml': timeSliced(8) });
    const fixed = await changed;
    expect(fixed.previous).toBe(change.current);
    expect(replicasOf(source)).toBe(8);
  });

  it('applies a ConfigMap swap (one rename of ..data) at once, without the debounce of in-place edits', async () => {
    const mount = await volume({ default: timeSliced(2) });
    const source = await open({ path: mount.dir, debounceMs: NEVER_MS });
    await source.reload();
    for (const replicas of [3, 4]) {
      const changed = next(source, 'change', 10_000);
      await mount.write({ default: timeSliced(replicas) });
      expect(replicasIn(await changed)).toBe(replicas);
    }
  });

  it('reads again, rather than reports, a config that failed while the volume was being swapped', async () => {
    const mount = await volume({ default: timeSliced(2) });
    // The content of a second update, ready to be swapped in while the first is being checked.
    const nextData = path.join(mount.dir, '..next');
    mkdirSync(nextData);
    writeFileSync(path.join(nextData, 'default'), timeSliced(6));
    let swapped = false;
    const validate = (config: Parameters<typeof applyOverrides>[0]) => {
      if (swapped || config.sharing.timeSlicing.resources[0]?.replicas !== 3) return [];
      swapped = true;
      symlinkSync('..next', path.join(mount.dir, '..data_tmp'));
      renameSync(path.join(mount.dir, '..data_tmp'), path.join(mount.dir, '..data'));
      return ['refused: checked while the volume was being swapped'];
    };
    const source = await open({ path: mount.dir, validate });
    await source.reload();
    const recorded = record(source);
    const changed = next(source, 'change', 10_000);
    await mount.write({ default: timeSliced(3) });
    expect(replicasIn(await changed)).toBe(6);
    expect(recorded.events.map(([event]) => event)).toEqual(['change']);
  });

  it('refuses a key that is a FIFO, and keeps following the volume', async () => {
    const mount = await volume({ default: timeSliced(2) });
    const source = await open({ path: mount.dir });
    await source.reload();
    // Behind `..data`, so that only the reload asked for below sees it.
    await fifoAt(path.join(await mount.currentDataDir(), 'default'));
    const rejected = next(source, 'invalid', 10_000);
    void source.reload(); // SIGHUP
    expect((await rejected).issues).toEqual([
      `${path.join(mount.dir, 'default')}: is a FIFO (named pipe), ${NOT_REGULAR}`,
    ]);
    expect(replicasOf(source)).toBe(2);
    const changed = next(source, 'change', 10_000);
    await mount.write({ default: timeSliced(5) });
    expect(replicasIn(await changed)).toBe(5);
  });

  it('logs a rejected config once and bounded: the first issues, cut short, and how many more', async () => {
    const mount = await volume({ default: timeSliced(2) });
    const { logger, lines, raw } = collectingLogger();
    const source = await open({ path: mount.dir, logger });
    const rejected = next(source, 'invalid');
    const devices = Array.from({ length: 50 }, (_, i) => JSON.stringify(`${i}-${'x'.repeat(5000)}`));
    await mount.write({ default: `${timeSliced(2)}        devices: [${devices.join(', ')}]\n` });
    const { issues } = await rejected;
    expect(issues).toHaveLength(50);
    const logged = lines.findIndex((l) => l.level === 50);
    expect(lines[logged]).toMatchObject({
      msg: `config update rejected (50 problems); still serving default (${source.current.hash})`,
      issuesNotShown: 40,
    });
    const shown = lines[logged]!.issues as string[];
    expect(shown).toHaveLength(10);
    for (const [i, issue] of shown.entries()) {
      expect(issue).toMatch(/… \(\d+ more characters\)$/);
      expect(issue.length).toBeLessThan(400);
      expect(issues[i]!.startsWith(issue.replace(/… \(\d+ more characters\)$/, ''))).toBe(true);
    }
    // The value is in the log once, not repeated in the message.
    expect(raw[logged]!.length).toBeLessThan(5000);
    expect(raw[logged]!.split('0-xxxx').length).toBe(2);
  });

  it('re-selects when a key named default appears (only key → default)', async () => {
    const mount = await volume({ 'a100-ts': timeSliced(2) });
    const source = await open({ path: mount.dir });
    expect(source.current).toMatchObject({ name: 'a100-ts', reason: 'only' });
    const changed = next(source, 'change');
    await mount.write({ 'a100-ts': timeSliced(2), default: 'version: v1\n' });
    const change = await changed;
    expect(change.current).toMatchObject({
      name: 'default',
      reason: 'default',
      file: path.join(mount.dir, 'default'),
    });
    expect(change.current.config.sharing.timeSlicing.resources).toEqual([]);
  });

  it('follows the node label, and keeps serving when the chosen key vanishes', async () => {
    const mount = await volume({ default: 'version: v1\n', 'ts-4': timeSliced(4) });
    const source = await open({ path: mount.dir });
    const recorded = record(source);
    expect(source.current).toMatchObject({ name: 'default', reason: 'default' });

    await source.setNodeLabel('ts-4');
    expect(source.current).toMatchObject({ name: 'ts-4', reason: 'label' });
    expect(recorded.events.map(([e, v]) => [e, 'current' in v ? v.current.name : v.name])).toEqual([
      ['change', 'ts-4'],
    ]);

    await source.setNodeLabel('missing');
    expect(recorded.events.at(-1)).toEqual([
      'invalid',
      {
        name: 'missing',
        issues: [
          `${mount.dir}: specified config missing does not exist (available: default, ts-4); named by node label nvidia.com/device-plugin.config`,
        ],
      },
    ]);
    expect(source.current.name).toBe('ts-4');

    await source.setNodeLabel('ts-4');
    expect(recorded.events).toHaveLength(2); // same key, same content: nothing to apply
    const rejected = next(source, 'invalid');
    await mount.write({ default: 'version: v1\n' });
    expect((await rejected).issues[0]).toContain('specified config ts-4 does not exist (available: default)');
    expect(replicasOf(source)).toBe(4);

    await source.setNodeLabel(undefined);
    expect(source.current).toMatchObject({ name: 'default', reason: 'default' });
  });

  it('catches changes no watched path shows through the periodic re-read', async () => {
    const mount = await volume({ default: timeSliced(2) });
    const source = await open({ path: mount.dir, resyncIntervalMs: 100 });
    const changed = next(source, 'change');
    // Rewriting the payload file behind `..data` changes no watched entry; only the re-read sees it.
    await writeFile(path.join(await mount.currentDataDir(), 'default'), timeSliced(3));
    expect((await changed).current.config.sharing.timeSlicing.resources[0]?.replicas).toBe(3);
  });

  it('re-applies the command-line overrides on every load', async () => {
    const mount = await volume({ default: 'version: v1\nflags:\n  migStrategy: single\n' });
    const overrides = (config: Parameters<typeof applyOverrides>[0]) =>
      applyOverrides(config, { migStrategy: 'mixed' }, { migStrategy: 'MIG_STRATEGY' });
    const source = await open({ path: mount.dir, overrides });
    expect(source.current.config.flags.migStrategy).toBe('mixed');
    const changed = next(source, 'change');
    await mount.write({ default: 'version: v1\nflags:\n  migStrategy: none\n  failOnInitError: false\n' });
    const { current } = await changed;
    expect(current.config.flags).toMatchObject({ migStrategy: 'mixed', failOnInitError: false });
  });
  it('rejects configs the validate hook refuses (e.g. not applicable to this node), keeping the last good one', async () => {
    const mount = await volume({ default: timeSliced(2) });
    const validate = (config: Parameters<typeof applyOverrides>[0]) =>
      config.flags.migStrategy === 'single' ? ['flags.migStrategy: single cannot be used on this node'] : [];
    const source = await open({ path: mount.dir, validate });
    const rejected = next(source, 'invalid');
    await mount.write({ default: `${timeSliced(4)}flags:\n  migStrategy: single\n` });
    expect(await rejected).toEqual({
      name: 'default',
      issues: [`${path.join(mount.dir, 'default')}: flags.migStrategy: single cannot be used on this node`],
    });
    expect(replicasOf(source)).toBe(2);
  });
});

describe('ConfigSource on a plain file', () => {
  async function configFile(text: string): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-config-file-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'config.yaml');
    await writeFile(file, text);
    return file;
  }

  it('follows atomic renames over the file and in-place writes', async () => {
    const file = await configFile(timeSliced(2));
    const source = await open({ path: file });
    expect(source.current).toMatchObject({ name: 'config.yaml', reason: 'file', file });

    let changed = next(source, 'change');
    await writeFile(`${file}.tmp`, timeSliced(4));
    await rename(`${file}.tmp`, file);
    expect(replicasOf(source)).toBe(2);
    await changed;
    expect(replicasOf(source)).toBe(4);

    changed = next(source, 'change');
    await writeFile(file, timeSliced(6));
    await changed;
    expect(replicasOf(source)).toBe(6);

    const rejected = next(source, 'invalid');
    await writeFile(file, '');
    expect((await rejected).issues).toEqual([
      `${file}: file is empty (write "version: v1" for the default configuration)`,
    ]);
    expect(replicasOf(source)).toBe(6);
  });

  it('applies a rename over the file at once, without the debounce of in-place edits', async () => {
    const file = await configFile(timeSliced(2));
    const source = await open({ path: file, debounceMs: NEVER_MS });
    await source.reload();
    const changed = next(source, 'change', 10_000);
    await writeFile(`${file}.tmp`, timeSliced(4));
    await rename(`${file}.tmp`, file);
    expect(replicasIn(await changed)).toBe(4);
  });

  it('does not apply a file edited in place before its last write', async () => {
    const file = await configFile(timeSliced(2));
    // Writes closer together than the debounce are one edit: only the file they leave is read.
    const source = await open({ path: file, debounceMs: 3000 });
    await source.reload();
    const recorded = record(source);
    const changed = next(source, 'change', 15_000);
    // Cut after `replicas: 4` the file is a valid config of its own: it must not be applied on the way to 40.
    const complete = timeSliced(40);
    const cut = complete.indexOf('40') + 1;
    const handle = await openFile(file, 'r+');
    await handle.truncate(0);
    await handle.write(complete.slice(0, cut), 0);
    // Longer than chokidar's 50 ms throttle of `change` events, so the half-written file is seen on its own.
    await sleep(200);
    await handle.write(complete.slice(cut), cut);
    await handle.close();
    expect(replicasIn(await changed)).toBe(40);
    expect(recorded.events.map(([event, value]) => [event, 'current' in value && replicasIn(value)])).toEqual(
      [['change', 40]],
    );
  });

  it('refuses a FIFO put at the config path, keeps following the file, and closes', async () => {
    const file = await configFile(timeSliced(2));
    const source = await open({ path: file });
    const rejected = next(source, 'invalid', 10_000);
    await fifoAt(file);
    expect((await rejected).issues).toEqual([`${file}: is a FIFO (named pipe), ${NOT_REGULAR}`]);
    expect(replicasOf(source)).toBe(2);
    await source.reload(); // SIGHUP: answered, not stuck behind a blocked read
    const changed = next(source, 'change', 10_000);
    await writeFile(`${file}.tmp`, timeSliced(3));
    await rename(`${file}.tmp`, file);
    expect(replicasIn(await changed)).toBe(3);
    await source.close();
  });
});

describe('ConfigSource.open failures', () => {
  it('throws ConfigLoadError with every issue', async () => {
    const mount = await volume({ default: `${timeSliced(0)}flags:\n  migStrategy: sometimes\n` });
    const error = await ConfigSource.open({ path: mount.dir, logger: collectingLogger().logger }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(ConfigLoadError);
    const file = path.join(mount.dir, 'default');
    expect((error as ConfigLoadError).issues).toEqual([
      `${file}: sharing.timeSlicing.resources[0].replicas: number of replicas must be >= 2 (got 0)`,
      `${file}: flags.migStrategy: unknown MIG strategy: sometimes (expected none, single or mixed)`,
    ]);
  });

  it.each([
    [
      'a missing path',
      '/nonexistent/vgpu',
      '/nonexistent/vgpu: not found (expected a config file or a mounted ConfigMap directory)',
    ],
  ])('reports %s', async (_, configPath, issue) => {
    const error = await ConfigSource.open({ path: configPath, logger: collectingLogger().logger }).catch(
      (e) => e,
    );
    expect((error as ConfigLoadError).issues).toEqual([issue]);
  });

  it('refuses a FIFO at the config path without blocking', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-config-fifo-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'config.yaml');
    execFileSync('mkfifo', [file]);
    const error = await ConfigSource.open({ path: file, logger: collectingLogger().logger }).catch((e) => e);
    expect((error as ConfigLoadError).issues).toEqual([`${file}: is a FIFO (named pipe), ${NOT_REGULAR}`]);
  });

  it('reports failing overrides', async () => {
    const mount = await volume({ default: 'version: v1\n' });
    const error = await ConfigSource.open({
      path: mount.dir,
      logger: collectingLogger().logger,
      overrides: (config) => applyOverrides(config, { migStrategy: 'foo' }, { migStrategy: 'MIG_STRATEGY' }),
    }).catch((e) => e);
    expect((error as ConfigLoadError).issues).toEqual([
      'unknown MIG strategy: foo (set by MIG_STRATEGY; expected none, single or mixed)',
    ]);
  });
});

describe('ConfigSource.close', () => {
  const watchHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;

  it('stops watching and re-reading: no events, no log lines, no handles left', async () => {
    const baseline = watchHandles();
    const mount = await volume({ default: timeSliced(2) });
    const { logger, lines } = collectingLogger();
    const source = await ConfigSource.open({ path: mount.dir, logger, resyncIntervalMs: 20, debounceMs: 10 });
    const recorded = record(source);
    expect(watchHandles()).toBeGreaterThan(baseline);
    await source.close();
    await source.close();
    // libuv releases a closed fs.watch handle on its next turn.
    await expect.poll(watchHandles).toBe(baseline);

    const logged = lines.length;
    await mount.write({ default: timeSliced(4) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(recorded.events).toEqual([]);
    expect(lines.length).toBe(logged);
    expect(replicasOf(source)).toBe(2);
    await source.reload();
    await source.setNodeLabel('x');
    expect(recorded.events).toEqual([]);
  });
});
