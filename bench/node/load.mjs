// Load client for the Node-reachable peers, printing the JSON line `garou bench fanout --json`
// prints (deliveries_per_sec, deliveries, published, lost, duplicated, p50/p95/p99/max ms, errors).
//   node load.mjs fanout --peer socketio|ws|nats --url URL --clients 100 --rate R --size 64 --duration D
//   node load.mjs rooms  --peer socketio|nats --url URL --rooms 250 --members 4 --rate R --size 64 --duration D
//                                      (what `garou bench rooms --json` prints: every member publishes)
//   node load.mjs idle   --peer ... --url URL --connections N --hold S    (prints READY N, holds)
// All subscribers and the publisher live in this one process on one core (the harness pins it);
// its CPU is not what is measured, the server's is.

import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { connect as natsConnect } from 'nats';
import { parseArgs, runFanout, runIdle, runRooms, withTimeout } from './common.mjs';

const a = parseArgs(process.argv.slice(2));
const T = 15000;

function socketio(url) {
  const opts = (role) => ({
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    rejectUnauthorized: false,
    query: { role },
  });
  const open = (role, onMessage, room) =>
    withTimeout(
      new Promise((resolve, reject) => {
        const s = io(url, room === undefined ? opts(role) : { ...opts(role), query: { role, room } });
        s.on('connect_error', reject);
        if (onMessage) s.on('msg', onMessage);
        s.once('ready', () => resolve(s));
      }),
      T,
      'socket.io connect',
    );
  return {
    async subscriber(_i, onMessage) {
      const s = await open('sub', onMessage);
      return { close: () => s.close() };
    },
    async publisher() {
      const s = await open('pub');
      return { send: (m) => s.emit('msg', m), close: () => s.close() };
    },
    async member(_i, room, onMessage) {
      const s = await open('member', onMessage, room);
      return { send: (m) => s.emit('msg', m), close: () => s.close() };
    },
  };
}

function ws(url) {
  const open = (path, onMessage) =>
    withTimeout(
      new Promise((resolve, reject) => {
        const w = new WebSocket(url + path, { perMessageDeflate: false, rejectUnauthorized: false });
        w.on('error', reject);
        w.once('message', () => {
          if (onMessage) w.on('message', (d) => onMessage(d));
          resolve(w);
        });
      }),
      T,
      'ws connect',
    );
  return {
    async subscriber(_i, onMessage) {
      const w = await open('/sub', onMessage);
      return { close: () => w.close() };
    },
    async publisher() {
      const w = await open('/pub');
      return { send: (m) => w.send(m), close: () => w.close() };
    },
  };
}

function nats(url) {
  const servers = url.replace(/^nats:\/\//, '');
  return {
    async subscriber(i, onMessage) {
      const nc = await withTimeout(natsConnect({ servers, reconnect: false }), T, 'nats connect');
      nc.subscribe('room', {
        callback: (err, m) => {
          if (!err) onMessage(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length));
        },
      });
      await nc.flush();
      return { close: () => nc.close() };
    },
    async publisher() {
      const nc = await withTimeout(natsConnect({ servers, reconnect: false }), T, 'nats connect');
      const enc = new TextEncoder();
      return { send: (m) => nc.publish('room', enc.encode(m)), close: () => nc.close() };
    },
    async member(_i, room, onMessage) {
      // A subject per room; NATS echoes a connection's own publish to its subscription.
      const nc = await withTimeout(natsConnect({ servers, reconnect: false }), T, 'nats connect');
      nc.subscribe(room, {
        callback: (err, m) => {
          if (!err) onMessage(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length));
        },
      });
      await nc.flush();
      const enc = new TextEncoder();
      return { send: (m) => nc.publish(room, enc.encode(m)), close: () => nc.close() };
    },
  };
}

const drivers = { socketio, ws, nats };
const make = drivers[a.peer];
if (!make) {
  console.error(`--peer must be one of ${Object.keys(drivers).join(', ')}`);
  process.exit(2);
}
const driver = make(a.url);
if (a.mode === 'idle') {
  await runIdle(driver, a);
} else if (a.mode === 'rooms') {
  if (!driver.member) {
    console.error(`--peer ${a.peer} has no rooms variant`);
    process.exit(2);
  }
  console.log(JSON.stringify(await runRooms(driver, a)));
} else {
  console.log(JSON.stringify(await runFanout(driver, a)));
}
process.exit(0);
