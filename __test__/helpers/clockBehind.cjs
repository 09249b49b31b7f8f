// Preloaded into s3backer (NODE_OPTIONS=--require) by the clock-skew test: this process's clock
// reads an hour behind the machine's (and S3's), as on a host whose clock was never set. Timers
// run on the monotonic clock and are unaffected.
const RealDate = Date;
const OFFSET_MS = -60 * 60 * 1000;
class BehindDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + OFFSET_MS);
    else super(...args);
  }
  static now() {
    return RealDate.now() + OFFSET_MS;
  }
}
globalThis.Date = BehindDate;
