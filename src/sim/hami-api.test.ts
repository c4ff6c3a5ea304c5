/** The simulated HAMi scheduler's strings: byte for byte what HAMi's scheduler writes. */
import { describe, expect, it } from 'vitest';
import { parseNodeLock } from '../hami/protocol.js';
import { goRfc3339, schedulerDecision } from './hami-api.js';

describe('the scheduler side of the HAMi API simulator', () => {
  it("encodes a decision as HAMi's own tests write it: `:` after each device, `;` after each container", () => {
    const a = 'GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448';
    expect(
      schedulerDecision([[{ uuid: a, memoryMiB: 3000, cores: 0 }], [{ uuid: a, memoryMiB: 5000, cores: 0 }]]),
    ).toBe(`${a},NVIDIA,3000,0:;${a},NVIDIA,5000,0:;`);
    expect(schedulerDecision([[], []])).toBe(';;');
  });

  it("writes Go's RFC 3339: Z in UTC, the zone offset elsewhere, the same instant either way", () => {
    const t = new Date('2025-03-04T05:06:07.890Z');
    expect(goRfc3339(t, 0)).toBe('2025-03-04T05:06:07Z');
    expect(goRfc3339(t, 8 * 60)).toBe('2025-03-04T13:06:07+08:00');
    expect(goRfc3339(t, -(5 * 60 + 30))).toBe('2025-03-03T23:36:07-05:30');
    for (const offset of [0, 480, -330]) {
      expect(parseNodeLock(`${goRfc3339(t, offset)},ns,p`).time.getTime()).toBe(
        new Date('2025-03-04T05:06:07Z').getTime(),
      );
    }
  });
});
