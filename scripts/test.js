#!/usr/bin/env node
// Runs the whole suite with vitest and ends with one plain summary line:
// "N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const report = '.vitest-report.json';
rmSync(report, { force: true });
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
// The CLI bundle the end-to-end tests spawn must be built from the current sources.
const built = spawnSync(process.execPath, ['scripts/build.js'], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);
const run = spawnSync('npx', args, { stdio: 'inherit' });
let summary;
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  summary = { passed: r.numPassedTests, failed: r.numFailedTests, skipped: r.numPendingTests + r.numTodoTests };
  if (r.numFailedTestSuites > 0 && r.numFailedTests === 0) summary.failed = r.numFailedTestSuites;
} catch {
  summary = undefined;
}
if (summary) {
  console.log(`\n${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
}
process.exit(run.status ?? 1);
