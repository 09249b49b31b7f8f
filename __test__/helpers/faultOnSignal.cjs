// Preloaded into s3backer (NODE_OPTIONS=--require) by the daemon-log tests: SIGUSR2 makes a
// promise reject with nobody to catch it, a fault no command line can cause, in the process
// serving the mount (the daemon's parent runs this file too, and exits before any signal).
process.on('SIGUSR2', () => {
  Promise.reject(new Error('injected fault after the mount'));
});
