// Preloaded (NODE_OPTIONS=--require) into s3backer under test: host names ending in .flaky.test
// resolve to loopback, except while the file named by S3B_DNS_DOWN exists; then they fail as an
// unknown name does (ENOTFOUND), and each failure adds a line to "$S3B_DNS_DOWN.log" so a test
// can tell the outage was actually met (sockets already open need no lookup).
const dns = require('node:dns');
const fs = require('node:fs');
const original = dns.lookup;
const down = process.env.S3B_DNS_DOWN;
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof hostname === 'string' && hostname.endsWith('.flaky.test')) {
    const cb = typeof options === 'function' ? options : callback;
    const all = typeof options === 'object' && options !== null && options.all;
    if (down && fs.existsSync(down)) {
      fs.appendFileSync(`${down}.log`, `${hostname}\n`);
      const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', hostname });
      return process.nextTick(() => cb(err));
    }
    return process.nextTick(() => (all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)));
  }
  return original.call(this, hostname, options, callback);
};
