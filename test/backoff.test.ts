import { describe, expect, it } from 'vitest';
import { Backoff, sleep } from '../src/backoff.js';

const HOUR_MS = 3_600_000;

describe('Backoff', () => {
  it('grows from initialMs by the multiplier, capped at maxMs, and starts over on reset()', () => {
    const backoff = new Backoff({ initialMs: 250, maxMs: 5000 });
    expect(Array.from({ length: 7 }, () => backoff.next())).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    expect(backoff.failures).toBe(7);
    backoff.reset();
    expect(backoff.failures).toBe(0);
    expect(backoff.next()).toBe(250);
  });

  it('keeps a constant delay with multiplier 1', () => {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 1000, multiplier: 1 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([1000, 1000, 1000]);
  });

  it('spreads each delay by ±jitter around its base', () => {
    const draws = [0, 0.5, 1];
    const backoff = new Backoff({
      initialMs: 1000,
      maxMs: 30_000,
      jitter: 0.2,
      random: () => draws.shift()!,
    });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([800, 2000, 4800]);
  });

  it('a pause ends on wake(), and the next pause is a fresh one', async () => {
    const backoff = new Backoff({ initialMs: HOUR_MS, maxMs: HOUR_MS });
    const paused = backoff.pause();
    backoff.wake();
    await paused;
    backoff.wake(); // no pause under way: nothing to end, nothing breaks
    const second = backoff.pause(HOUR_MS);
    backoff.wake();
    await second;
  });

  it('a pause ends when its signal aborts, at once when already aborted', async () => {
    const backoff = new Backoff({ initialMs: HOUR_MS, maxMs: HOUR_MS });
    const abort = new AbortController();
    const paused = backoff.pause(undefined, abort.signal);
    abort.abort();
    await paused;
    await backoff.pause(HOUR_MS, abort.signal);
    await sleep(HOUR_MS, abort.signal);
  });

  it('sleep waits its time when nothing ends it', async () => {
    const order: string[] = [];
    const slept = sleep(20).then(() => order.push('slept'));
    await Promise.resolve();
    order.push('before');
    await slept;
    expect(order).toEqual(['before', 'slept']);
  });
});
