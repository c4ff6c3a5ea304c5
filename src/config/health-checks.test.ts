/** DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS, with NVIDIA's cases from internal/rm/health_test.go. */
import { describe, expect, test } from 'vitest';
import {
  type HealthCheckSettings,
  healthChecksFromEnv,
  isXidIgnored,
  parseXidList,
} from './health-checks.js';
import { DEFAULT_DISABLED_XIDS } from './schema.js';

const FILE_DEFAULT = { enabled: true, disabledXids: DEFAULT_DISABLED_XIDS };

function settings(disable: string | undefined, enable: string | undefined, configured = FILE_DEFAULT) {
  const s = healthChecksFromEnv(
    { DP_DISABLE_HEALTHCHECKS: disable, DP_ENABLE_HEALTHCHECKS: enable },
    configured,
  );
  return {
    ...s,
    disabledXids: [...s.disabledXids].sort((a, b) => a - b),
    onlyXids: s.onlyXids && [...s.onlyXids],
  };
}

describe('parseXidList (TestNewHealthCheckXIDs)', () => {
  test.each([
    ['', []],
    [',', []],
    ['not-an-int', []],
    ['68', [68]],
    ['-68', []],
    ['68  ', [68]],
    ['68,', [68]],
    [',68', [68]],
    ['68,67', [67, 68]],
    ['68,not-an-int,67', [67, 68]],
    ['+68', []],
    ['0x44', []],
    ['068', [68]],
  ])('%j → %j', (value, xids) => {
    const parsed = parseXidList(value, 'DP_DISABLE_HEALTHCHECKS', []);
    expect({ all: parsed.all, xids: [...parsed.xids].sort((a, b) => a - b) }).toEqual({ all: false, xids });
  });

  test.each([['all'], ['xids'], ['ALL'], [' Xids '], ['68,all,67']])('%j means every XID', (value) => {
    expect(parseXidList(value, 'DP_DISABLE_HEALTHCHECKS', []).all).toBe(true);
  });

  test('malformed entries are reported', () => {
    const warnings: string[] = [];
    parseXidList('68,not-an-int,-68', 'DP_DISABLE_HEALTHCHECKS', warnings);
    expect(warnings).toEqual([
      'DP_DISABLE_HEALTHCHECKS: ignoring malformed XID "not-an-int"',
      'DP_DISABLE_HEALTHCHECKS: ignoring malformed XID "-68"',
    ]);
  });
});

describe('healthChecksFromEnv (TestGetDisabledHealthCheckXids)', () => {
  const defaults = [13, 31, 43, 45, 68, 109];
  test.each([
    [
      'no variables: the default application XIDs',
      undefined,
      undefined,
      { enabled: true, disabledXids: defaults, onlyXids: null },
    ],
    ['disabled is all', 'all', undefined, { enabled: false, disabledXids: [], onlyXids: null }],
    ['disabled is xids', 'xids', undefined, { enabled: false, disabledXids: [], onlyXids: null }],
    [
      'enabled is all: not even the defaults are ignored',
      undefined,
      'all',
      { enabled: true, disabledXids: [], onlyXids: null },
    ],
    ['enabled overrides disabled', '11', '11', { enabled: true, disabledXids: defaults, onlyXids: null }],
    [
      'a disabled list adds to the defaults',
      '48,79',
      undefined,
      { enabled: true, disabledXids: [...defaults.slice(0, 4), 48, 68, 79, 109], onlyXids: null },
    ],
    [
      'an enabled list removes defaults',
      undefined,
      '68,13',
      { enabled: true, disabledXids: [31, 43, 45, 109], onlyXids: null },
    ],
    ['enabled all wins over disabled all', 'all', 'all', { enabled: true, disabledXids: [], onlyXids: null }],
    [
      'all disabled but some enabled: only those count',
      'all',
      '79,48',
      { enabled: true, disabledXids: [], onlyXids: [79, 48] },
    ],
    ['empty variables are unset', '', '', { enabled: true, disabledXids: defaults, onlyXids: null }],
  ])('%s', (_what, disable, enable, expected) => {
    expect(settings(disable, enable)).toEqual({ ...expected, warnings: [] });
  });

  test('health.disabledXids from the file replaces the defaults; the variables apply on top', () => {
    expect(settings('94', undefined, { enabled: true, disabledXids: [13] }).disabledXids).toEqual([13, 94]);
  });

  test('health.enabled: false is like DP_DISABLE_HEALTHCHECKS=all', () => {
    const off = { enabled: false, disabledXids: DEFAULT_DISABLED_XIDS };
    expect(settings(undefined, undefined, off)).toMatchObject({ enabled: false });
    expect(settings(undefined, 'all', off)).toMatchObject({ enabled: true, disabledXids: [] });
    expect(settings(undefined, '79', off)).toMatchObject({ enabled: true, onlyXids: [79] });
  });
});

describe('isXidIgnored', () => {
  const make = (s: Partial<HealthCheckSettings>): HealthCheckSettings => ({
    enabled: true,
    disabledXids: new Set(),
    onlyXids: null,
    warnings: [],
    ...s,
  });
  test.each([
    [make({ enabled: false }), 79, true],
    [make({ disabledXids: new Set([13]) }), 13, true],
    [make({ disabledXids: new Set([13]) }), 79, false],
    [make({ onlyXids: new Set([79]) }), 79, false],
    [make({ onlyXids: new Set([79]) }), 48, true],
  ])('%#', (s, xid, ignored) => {
    expect(isXidIgnored(s, xid)).toBe(ignored);
  });
});
