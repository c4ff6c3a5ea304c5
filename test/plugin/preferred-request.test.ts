/** GetPreferredAllocation requests are checked against the resource before any search. */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { checkPreferredRequest, quoteId } from '../../src/plugin/preferred-request.js';
import { RequestError } from '../../src/plugin/request-error.js';

const devices = new Map(['a', 'b', 'c', 'd'].map((id, index) => [id, index]));
const problemOf = (available: string[], mustInclude: string[], size: number): string | undefined => {
  try {
    checkPreferredRequest({ available, mustInclude, size }, 'nvidia.com/gpu', devices);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).code).toBe(status.INVALID_ARGUMENT);
    return (err as RequestError).message.replace(
      'invalid GetPreferredAllocation request for nvidia.com/gpu: ',
      '',
    );
  }
};

describe('checkPreferredRequest', () => {
  it.each([
    ['all offered, must-include inside, size between', ['a', 'b', 'c'], ['b'], 2],
    ['size equal to what is offered', ['a', 'b'], [], 2],
    ['size equal to must-include', ['a', 'b'], ['a', 'b'], 2],
  ])('accepts %s', (_what, available, mustInclude, size) => {
    expect(problemOf(available, mustInclude, size)).toBeUndefined();
  });

  it.each([
    [
      'more IDs than the resource has',
      ['a', 'b', 'c', 'd', 'a'],
      [],
      1,
      '5 available device IDs, but the resource has 4 devices',
    ],
    ['size 0', ['a'], [], 0, 'allocation_size 0 is not a positive integer'],
    ['a negative size', ['a'], [], -3, 'allocation_size -3 is not a positive integer'],
    [
      'size above what is offered',
      ['a', 'b'],
      [],
      3,
      'allocation_size 3 is more than the 2 available device IDs',
    ],
    [
      'size below must-include',
      ['a', 'b'],
      ['a', 'b'],
      1,
      'allocation_size 1 is less than the 2 must-include device IDs',
    ],
    [
      'an ID not of this resource',
      ['a', 'GPU-elsewhere'],
      [],
      1,
      'available device ID "GPU-elsewhere" is not a device of this resource',
    ],
    ['an ID offered twice', ['a', 'b', 'a'], [], 1, 'available device ID "a" is listed twice'],
    [
      'must-include not offered',
      ['a', 'b'],
      ['c'],
      1,
      'must-include device ID "c" is not among the available ones',
    ],
    ['must-include twice', ['a', 'b', 'c'], ['a', 'a'], 2, 'must-include device ID "a" is listed twice'],
    [
      'must-include not of this resource',
      ['a', 'b'],
      ['GPU-elsewhere'],
      1,
      'must-include device ID "GPU-elsewhere" is not among the available ones',
    ],
  ])('refuses %s, naming the first problem', (_what, available, mustInclude, size, problem) => {
    expect(problemOf(available, mustInclude, size)).toBe(problem);
  });

  it('never echoes an overlong ID: it is cut, with its length', () => {
    const huge = `GPU-${'x'.repeat(200_000)}`;
    const problem = problemOf([huge], [], 1)!;
    expect(problem).toBe(`available device ID ${quoteId(huge)} is not a device of this resource`);
    expect(problem.length).toBeLessThan(200);
    expect(problem).toContain('… (200004 characters)');
  });

  it('quotes an ID of up to 80 characters whole', () => {
    const eighty = `GPU-${'x'.repeat(76)}`;
    expect(quoteId(eighty)).toBe(JSON.stringify(eighty));
    expect(quoteId(`${eighty}y`)).toBe(`${JSON.stringify(eighty)}… (81 characters)`);
  });

  it('quotes control characters instead of writing them', () => {
    expect(quoteId('a\nb')).toBe('"a\\nb"');
  });
});
