// Preloaded into every test file's process (package.json's test:node). With --test-force-exit a
// file's process exits as soon as its last test ends, and node (24 and 26) does not wait for its
// report to drain from the pipe to the runner first: the last verdicts were lost at random, the
// run still passing with fewer tests counted (nodejs/node#64833; seen here in 3 of 16 runs of one
// file). Writes to a blocking pipe are whole before the exit.
const handle = /** @type {{ _handle?: { setBlocking?: (on: boolean) => number } }} */ (process.stdout)._handle;
handle?.setBlocking?.(true);
