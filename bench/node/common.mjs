// Shared by the Node load clients: payload format, per-subscriber accounting, the publisher loop,
// and the JSON line `garou bench fanout --json` prints, so every peer reports the same fields.
//
// Payload: "<seq> <sent_us> " padded with '.' to --size bytes (ASCII, so bytes == characters).
// sent_us is microseconds on this process's monotonic clock; publisher and subscribers share the
// process, so latency needs no clock sync.

import { performance } from 'node:perf_hooks';

export const nowUs = () => Math.round(performance.now() * 1000);

export function parseArgs(argv) {
  const a = { mode: argv[0] ?? 'fanout', clients: 100, rate: 0, size: 64, duration: 10, window: 256, hold: 30 };
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`--${k} needs a value`);
    a[k === 'connections' ? 'clients' : k] = /^[0-9.]+$/.test(v) ? Number(v) : v;
  }
  return a;
}

export function payload(seq, size) {
  const s = `${seq} ${nowUs()} `;
  return s.length >= size ? s : s + '.'.repeat(size - s.length);
}

/** Accounting of one run: unique deliveries per subscriber, duplicates, latencies. */
export class Stats {
  constructor(subs) {
    this.subs = subs;
    this.seen = Array.from({ length: subs }, () => new Uint8Array(1024));
    this.deliveries = 0; // unique, all subscribers, whole run
    this.inWindow = 0; // unique, inside the publishing window
    this.duplicated = 0;
    this.lat = new Float64Array(1 << 20);
    this.nlat = 0;
    this.measuring = true;
    this.errors = 0;
  }
  /** Record one delivered message (string or Buffer) for subscriber i. */
  record(i, msg) {
    const s = typeof msg === 'string' ? msg : msg.toString('latin1', 0, 32);
    const sp = s.indexOf(' ');
    const seq = Number(s.slice(0, sp));
    const sent = Number(s.slice(sp + 1, s.indexOf(' ', sp + 1)));
    let seen = this.seen[i];
    if (seq >= seen.length) {
      let n = seen.length;
      while (n <= seq) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(seen);
      this.seen[i] = seen = grown;
    }
    if (seen[seq]) {
      this.duplicated++;
      return;
    }
    seen[seq] = 1;
    this.deliveries++;
    if (this.measuring) this.inWindow++;
    if (this.nlat === this.lat.length) {
      const grown = new Float64Array(this.lat.length * 2);
      grown.set(this.lat);
      this.lat = grown;
    }
    this.lat[this.nlat++] = (nowUs() - sent) / 1000;
  }
  result(published, elapsedS, window) {
    const lat = this.lat.subarray(0, this.nlat).sort();
    const pct = (p) => (lat.length ? lat[Math.round((p / 100) * (lat.length - 1))] : 0);
    return {
      deliveries_per_sec: this.inWindow / elapsedS,
      deliveries: this.deliveries,
      published,
      lost: Math.max(0, published * this.subs - this.deliveries),
      duplicated: this.duplicated,
      p50_ms: pct(50),
      p95_ms: pct(95),
      p99_ms: pct(99),
      max_ms: lat.length ? lat[lat.length - 1] : 0,
      errors: this.errors,
      duration_s: elapsedS,
      // The publishing window on the wall clock, so the harness can read the server's CPU over
      // exactly this span.
      window_start_unix_ms: window[0],
      window_end_unix_ms: window[1],
    };
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Drive one fan-out run.
 * driver.subscriber(i, onMessage) -> Promise<handle with close()> (resolves once subscribed);
 * driver.publisher() -> Promise<{ send(str), close() }>.
 * Paced (rate > 0): messages due by the clock, checked every millisecond. Burst (rate 0): flat out
 * with at most `window` messages not yet delivered to every subscriber, so no server queue grows
 * without bound and the run measures throughput, not buffering.
 */
export async function runFanout(driver, a) {
  const stats = new Stats(a.clients);
  const subs = [];
  for (let i = 0; i < a.clients; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(a.clients, i + 50); j++) {
      batch.push(driver.subscriber(j, (m) => stats.record(j, m)));
    }
    subs.push(...(await Promise.all(batch)));
  }
  const pub = await driver.publisher();
  await sleep(300);
  let published = 0;
  const t0 = performance.now();
  const wall0 = Date.now();
  const end = t0 + a.duration * 1000;
  while (performance.now() < end) {
    let due;
    if (a.rate > 0) {
      due = Math.floor(((performance.now() - t0) / 1000) * a.rate) + 1 - published;
    } else {
      const inFlight = (published * a.clients - stats.deliveries) / a.clients;
      due = a.window - inFlight;
    }
    for (let k = 0; k < Math.min(due, 64); k++) {
      try {
        pub.send(payload(published, a.size));
      } catch {
        stats.errors++;
      }
      published++;
    }
    // Burst: let the receive side run (setImmediate); paced: tick every millisecond.
    await (a.rate > 0 ? sleep(1) : new Promise((r) => setImmediate(r)));
  }
  const elapsed = (performance.now() - t0) / 1000;
  stats.measuring = false;
  const wall1 = Date.now();
  const drainEnd = performance.now() + 3000;
  while (stats.deliveries < published * a.clients && performance.now() < drainEnd) await sleep(20);
  const out = stats.result(published, elapsed, [wall0, wall1]);
  await Promise.allSettled([pub.close(), ...subs.map((s) => s.close())]);
  return out;
}

/** Open n subscribed connections, print READY n, hold them `hold` seconds. */
export async function runIdle(driver, a) {
  const subs = [];
  for (let i = 0; i < a.clients; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(a.clients, i + 50); j++) batch.push(driver.subscriber(j, () => {}));
    subs.push(...(await Promise.all(batch)));
  }
  console.log(`READY ${subs.length}`);
  await sleep(a.hold * 1000);
  await Promise.allSettled(subs.map((s) => s.close()));
}

export function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(t));
}
