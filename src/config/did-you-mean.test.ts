import { describe, expect, test } from 'vitest';
import { closestMatch, osaDistance } from './did-you-mean.js';

describe('osaDistance', () => {
  test.each([
    ['', '', 0],
    ['abc', '', 3],
    ['replicas', 'replicas', 0],
    ['replica', 'replicas', 1], // deletion
    ['replicass', 'replicas', 1], // insertion
    ['replicaz', 'replicas', 1], // substitution
    ['rpelicas', 'replicas', 1], // adjacent transposition counts once
    ['ca', 'abc', 3], // OSA, unlike full Damerau-Levenshtein (2), cannot edit a transposed pair again
    ['kitten', 'sitting', 3],
  ])('%j → %j is %i', (a, b, distance) => {
    expect(osaDistance(a, b)).toBe(distance);
    expect(osaDistance(b, a)).toBe(distance);
  });
});

describe('closestMatch', () => {
  const keys = [
    'migStrategy',
    'failOnInitError',
    'nvidiaDriverRoot',
    'nvidiaDevRoot',
    'gdsEnabled',
    'plugin',
    'gfd',
  ];
  test.each([
    ['MIGSTRATEGY', 'migStrategy'], // case only, however far
    ['migStrateg', 'migStrategy'],
    ['failOnInitEror', 'failOnInitError'],
    ['nvidiaDevRot', 'nvidiaDevRoot'], // nearest of two close keys
    ['plugins', 'plugin'],
    ['gfx', 'gfd'],
    ['xyz', undefined], // 3 edits on a 3-letter key: a rewrite, not a typo
    ['timeSlicing', undefined],
  ])('%j → %j', (input, expected) => {
    expect(closestMatch(input, keys)).toBe(expected);
  });

  test('long keys allow a third of their length', () => {
    // 4 edits on an 18-letter key: more than 2, within 6.
    expect(closestMatch('devceLstStrtgy', ['deviceListStrategy'])).toBe('deviceListStrategy');
    // 10 edits on a 29-letter key: more than 9.
    expect(closestMatch('sharedDevicesPolicy', ['sharedDevicesAllocationPolicy'])).toBeUndefined();
  });
});
