// Reference servers for bench/compare.sh, each run alone, pinned to one core by the harness.
//   node servers.mjs socketio PORT [CERT KEY]   Socket.IO 4, server-side room broadcast: one room
//                                               (fan-out: role=pub / sub) or many (rooms: role=member&room=R)
//   node servers.mjs ws PORT                    plain `ws`: the publisher (path /pub) is echoed to all others
// Node runs JavaScript on one thread; the harness pins the process (GC helper threads included).

import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import { Server } from 'socket.io';
import { WebSocketServer } from 'ws';

const [kind, portArg, cert, key] = process.argv.slice(2);
const port = Number(portArg);
const httpServer = cert
  ? https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) })
  : http.createServer();

if (kind === 'socketio') {
  // The websocket transport only (clients skip long-polling), no per-message compression.
  const io = new Server(httpServer, { transports: ['websocket'], perMessageDeflate: false });
  io.on('connection', (socket) => {
    const { role, room } = socket.handshake.query;
    if (role === 'member') {
      // The rooms shape: a member of one small room that also publishes into it; the room
      // broadcast includes the sender, as Garou echoes a member's own message back.
      socket.join(room);
      socket.on('msg', (m) => io.to(room).emit('msg', m));
      socket.emit('ready');
    } else if (role === 'pub') {
      socket.on('msg', (m) => socket.to('room').emit('msg', m));
      socket.emit('ready');
    } else {
      socket.join('room');
      socket.emit('ready');
    }
  });
} else if (kind === 'ws') {
  const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false });
  const subs = new Set();
  wss.on('connection', (ws, req) => {
    if (req.url === '/pub') {
      ws.on('message', (data, isBinary) => {
        for (const s of subs) s.send(data, { binary: isBinary });
      });
    } else {
      subs.add(ws);
      ws.on('close', () => subs.delete(ws));
    }
    ws.send('ready');
  });
} else {
  console.error(`unknown server kind ${kind}`);
  process.exit(2);
}

httpServer.listen(port, '127.0.0.1', () => console.log(`listening ${kind} ${port}`));
process.on('SIGTERM', () => process.exit(0));
