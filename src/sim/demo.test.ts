/** The demo's step runner: numbering, one-line skips, and a failing step named in its error. */
import { describe, expect, it } from 'vitest';
import { DemoStepError, runSteps } from './demo.js';
import type { DemoContext, DemoStep } from './demo-steps.js';

/** runSteps only writes through `say`; the steps below touch nothing else. */
function transcriptContext(): { ctx: DemoContext; lines: string[] } {
  const lines: string[] = [];
  const ctx = { say: (line = '') => lines.push(line) } as unknown as DemoContext;
  return { ctx, lines };
}

const ran: DemoStep = {
  name: 'first',
  heading: () => 'Something happens',
  run: async (ctx) => ctx.say('   it happened'),
};
const skipped: DemoStep = {
  name: 'MIG',
  heading: () => 'MIG resources',
  skipReason: () => 'no GPU on this node is in MIG mode',
  run: async () => {
    throw new Error('a skipped step must not run');
  },
};
const failing: DemoStep = {
  name: 'time-slicing',
  heading: () => 'Time-slicing',
  run: async () => {
    throw new Error('requested number of devices unavailable');
  },
};

describe('runSteps', () => {
  it('numbers the steps and skips one that does not fit the node with its reason on one line', async () => {
    const { ctx, lines } = transcriptContext();
    await runSteps([ran, skipped], ctx);
    expect(lines).toEqual([
      '1. Something happens:',
      '   it happened',
      '',
      '2. MIG resources: skipped, no GPU on this node is in MIG mode',
      '',
    ]);
  });

  it('stops at a failing step with an error naming its number and name', async () => {
    const { ctx, lines } = transcriptContext();
    const failure = runSteps([ran, failing, ran], ctx);
    await expect(failure).rejects.toThrow(DemoStepError);
    await expect(failure).rejects.toThrow(
      'step 2 (time-slicing) failed: requested number of devices unavailable',
    );
    expect(lines.filter((l) => l.includes('Something happens'))).toHaveLength(1);
  });
});
