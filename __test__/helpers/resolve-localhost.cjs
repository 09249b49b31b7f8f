// Preloaded (NODE_OPTIONS=--require) into a client under test so that virtual-host names like
// bucket.localhost reach loopback; this machine's resolver does not map *.localhost.
const dns = require('node:dns');
const original = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof hostname === 'string' && hostname.endsWith('.localhost')) {
    const cb = typeof options === 'function' ? options : callback;
    const all = typeof options === 'object' && options !== null && options.all;
    return process.nextTick(() => (all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)));
  }
  return original.call(this, hostname, options, callback);
};
