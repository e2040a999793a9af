// Node's socket.io server (the version tests/js/package.json pins) with
// the handlers bench.mjs measures, written as a Socket.IO application
// would: `join` joins a room and acks {room, members}; `say` goes to the
// room's other members. The same work `switchboard serve` does for
// Socket.IO clients with its built-in `join` and a room message.
//
//   node bench/socketio/node_server.mjs PORT

import { createServer } from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/js/package.json', import.meta.url));
const { Server } = require('socket.io');

const port = Number(process.argv[2]);
const http = createServer();
const io = new Server(http, { serveClient: false });
io.on('connection', (socket) => {
  socket.emit('ready', { id: socket.id, name: null });
  socket.on('join', (room, ack) => {
    socket.join(room);
    if (typeof ack === 'function') ack({ room, members: io.sockets.adapter.rooms.get(room)?.size ?? 0 });
  });
  socket.on('say', ({ room, data }) => socket.to(room).emit('msg', data));
});
http.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
