// Reads vitest JSON reports (one per Node.js runtime) and prints, per runtime, its counts and how many
// real-container checks (test/container) ran; then the totals as the plain last line
// "N passed, N failed" that CI records. A missing report counts as a failure.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  const runtime = basename(file, '.json');
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    failed += 1;
    console.log(`${runtime}: no report (${err.code ?? err.message})`);
    continue;
  }
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  const checks = report.testResults
    .filter((result) => result.name.includes('/test/container/'))
    .flatMap((result) => result.assertionResults);
  const ran = checks.filter((check) => check.status === 'passed' || check.status === 'failed').length;
  console.log(`${runtime}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`);
  if (checks.length > 0)
    console.log(`${runtime}: container checks: ${ran} ran, ${checks.length - ran} skipped`);
}
console.log(`${passed} passed, ${failed} failed`);
