// Prints one plain closing line, "jest: N passed, N failed, N skipped", so any CI log reader sees the totals.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const line = `jest: ${results.numPassedTests} passed, ${results.numFailedTests} failed` +
      (results.numPendingTests + results.numTodoTests > 0 ? `, ${results.numPendingTests + results.numTodoTests} skipped` : '');
    process.stdout.write(`\n${line}\n`);
  }
}
module.exports = SummaryReporter;
