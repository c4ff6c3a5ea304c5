// Reads vitest JSON reports (one per Node.js runtime) and prints one line per runtime, then the
// totals as the plain last line "N passed, N failed" that CI records. A missing report is a failure.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  try {
    const report = JSON.parse(readFileSync(file, 'utf8'));
    passed += report.numPassedTests;
    failed += report.numFailedTests;
    console.log(
      `${basename(file, '.json')}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`,
    );
  } catch (err) {
    failed += 1;
    console.log(`${basename(file, '.json')}: no report (${err.code ?? err.message})`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
