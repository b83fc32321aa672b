// Shared by the Node load clients: payload format, per-subscriber accounting, the publisher loop,
// and the JSON line `garou bench fanout --json` prints, so every peer reports the same fields.
//
// Payload: "<seq> <sent_us> " padded with '.' to --size bytes (ASCII, so bytes == characters).
// sent_us is microseconds on this process's monotonic clock; publisher and subscribers share the
// process, so latency needs no clock sync.

import { performance } from 'node:perf_hooks';

export const nowUs = () => Math.round(performance.now() * 1000);

export function parseArgs(argv) {
  const a = {
    mode: argv[0] ?? 'fanout',
    clients: 100,
    rate: 0,
    size: 64,
    duration: 10,
    window: 256,
    hold: 30,
    rooms: 250,
    members: 4,
  };
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

/**
 * Drive one rooms run (the shape of `garou bench rooms`): `rooms` rooms of `members` members,
 * every member publishing into its own room, `rate` messages/s in total (0: one per member per
 * second). Messages are evenly spaced and dealt to the members in turn (member k of n sends
 * messages k, k + n, ...), which is the staggered schedule of `garou bench rooms`: each member
 * publishes at rate / n, and the total is `rate` at any value. Every member must see every
 * message of its room exactly once, its own included (as Garou echoes it).
 * driver.member(i, room, onMessage) -> Promise<{ send(str), close() }> (resolves once joined).
 * Payload: "<member> <seq> <sent_us> " padded with '.' to --size bytes.
 */
export async function runRooms(driver, a) {
  const n = a.rooms * a.members;
  const rate = a.rate > 0 ? a.rate : n;
  const seen = Array.from({ length: n }, () => new Set());
  const lat = [];
  let deliveries = 0;
  let inWindow = 0;
  let duplicated = 0;
  let errors = 0;
  let measuring = true;
  const onMessage = (i) => (msg) => {
    const s = typeof msg === 'string' ? msg : msg.toString('latin1', 0, 48);
    const sp1 = s.indexOf(' ');
    const sp2 = s.indexOf(' ', sp1 + 1);
    const key = s.slice(0, sp2);
    if (seen[i].has(key)) {
      duplicated++;
      return;
    }
    seen[i].add(key);
    deliveries++;
    if (measuring) inWindow++;
    lat.push((nowUs() - Number(s.slice(sp2 + 1, s.indexOf(' ', sp2 + 1)))) / 1000);
  };
  const members = [];
  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 50); j++) {
      batch.push(driver.member(j, `room-${Math.floor(j / a.members)}`, onMessage(j)));
    }
    for (const r of await Promise.allSettled(batch)) {
      if (r.status === 'fulfilled') {
        members.push(r.value);
      } else {
        members.push(null);
        errors++;
      }
    }
  }
  const live = (r) => members.slice(r * a.members, (r + 1) * a.members).filter(Boolean).length;
  const perRoom = new Float64Array(a.rooms);
  const seqs = new Uint32Array(n);
  await sleep(300);
  let published = 0;
  let due = 0;
  const t0 = performance.now();
  const wall0 = Date.now();
  const end = t0 + a.duration * 1000;
  while (performance.now() < end) {
    const target = Math.floor(((performance.now() - t0) / 1000) * rate) + 1;
    for (; due < target; due++) {
      const k = due % n;
      if (!members[k]) continue;
      try {
        members[k].send(`${k} ${seqs[k]++} ${nowUs()} `.padEnd(a.size, '.'));
        perRoom[Math.floor(k / a.members)]++;
        published++;
      } catch {
        errors++;
      }
    }
    await sleep(1);
  }
  const elapsed = (performance.now() - t0) / 1000;
  measuring = false;
  const wall1 = Date.now();
  let expected = 0;
  for (let r = 0; r < a.rooms; r++) expected += perRoom[r] * live(r);
  const drainEnd = performance.now() + 5000;
  while (deliveries < expected && performance.now() < drainEnd) await sleep(20);
  const sorted = Float64Array.from(lat).sort();
  const pct = (p) => (sorted.length ? sorted[Math.round((p / 100) * (sorted.length - 1))] : 0);
  await Promise.allSettled(members.filter(Boolean).map((m) => m.close()));
  return {
    scenario: 'rooms',
    deliveries_per_sec: inWindow / elapsed,
    deliveries,
    published,
    published_per_sec: published / elapsed,
    lost: Math.max(0, expected - deliveries),
    duplicated,
    p50_ms: pct(50),
    p95_ms: pct(95),
    p99_ms: pct(99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : 0,
    errors,
    duration_s: elapsed,
    rooms: a.rooms,
    members: a.members,
    rate,
    window_start_unix_ms: wall0,
    window_end_unix_ms: wall1,
  };
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
