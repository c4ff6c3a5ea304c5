/**
 * The generated host /proc lives in src/sim (the demo ships it); tests import it from here, with
 * holdStatRead, which only tests need.
 */
import { execFileSync } from 'node:child_process';
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FakeHostProc } from '../../src/sim/fake-proc.js';

export * from '../../src/sim/fake-proc.js';

/**
 * Holds the next read of `<root>/<pid>/stat`: the file becomes a FIFO, so whoever opens it waits
 * (as on a stuck /proc) until release() hands it the stat text; later reads find a plain file again.
 */
export async function holdStatRead(proc: FakeHostProc, pid: number): Promise<() => Promise<void>> {
  const file = path.join(proc.root, String(pid), 'stat');
  const text = await readFile(file, 'utf8');
  const fifo = `${file}.fifo`;
  execFileSync('mkfifo', [fifo]);
  await rename(fifo, file);
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    const writer = await open(file, 'w'); // returns once the reader has the FIFO open
    await writeFile(`${file}.tmp`, text);
    await rename(`${file}.tmp`, file);
    await writer.write(text);
    await writer.close();
  };
}
