// A small backend for the Socket.IO tests: the connect proxy and the event
// proxy of docs/PROXY.md on one loopback port, written the way a Socket.IO
// server's `io.use(auth)` and `io.on('connection', socket => socket.on(…))`
// would be. Not a test file itself (node --test picks up *.test.mjs only).
//
//   POST /connect  auth.token (or ?token=) "good" is accepted (named
//                  auth.name, in the rooms auth.rooms); anything else is
//                  refused with 401
//   POST /event    the handlers below, by hub event name

import http from 'node:http';
import { once } from 'node:events';

/** The handlers of `io.on('connection')`, by hub event (docs/SOCKETIO.md). */
const HANDLERS = {
  // socket.emit('event:hello') as a client connects (seed 004).
  connect: () => ({ emit: [{ event: 'event:hello', reply: true }] }),
  disconnect: () => ({}),
  // socket.on('gpio:21', () => socket.emit('gpio:21', true)) (seed 004).
  'gpio:21': () => ({ emit: [{ event: 'gpio:21', reply: true, data: true }] }),
  // The chat exercise: socket.on('chat message', msg => io.emit('chat message', msg))
  'chat message': (body) => ({ emit: [{ event: 'chat message', broadcast: true, data: body.data }] }),
  // socket.on('ask-me', () => socket.emit('question', 'what?', (...answer) => …)):
  // the emit asks for an acknowledgement with the id 7 ...
  'ask-me': () => ({ emit: [{ event: 'question', reply: true, data: 'what?', ack: 7 }] }),
  // ... and the client's answer comes back as the event `ack`.
  ack: () => ({}),
  // socket.on('echo', (arg, ack) => ack(arg))
  echo: (body) => ({ data: body.data }),
  // socket.on('file', (file, ack) => { socket.emit('file', file); ack({ got: file }) })
  file: (body) => ({ data: { got: body.data }, emit: [{ event: 'file', reply: true, data: body.data }] }),
  // socket.on('say', ({ room, text }) => socket.to(room).emit('chat', text))
  say: (body) => ({ emit: [{ event: 'chat', room: body.data.room, data: body.data.text }] }),
  // io.of('/chat'): socket.on('whoami', ack => ack({ nsp: '/chat', id: socket.id }))
  '/chat#whoami': (body) => ({ data: { nsp: '/chat', id: body.connection.id } }),
  // io.of('/chat'): socket.on('shout', text => io.of('/chat').emit('shout', text.toUpperCase()))
  '/chat#shout': (body) => ({ emit: [{ event: '/chat#shout', broadcast: true, data: String(body.data).toUpperCase() }] }),
  // io.of('/admin').on('connection', socket => socket.emit('welcome', …)): a
  // namespace joined after the connection's first one
  '/admin#connect': (body) => ({ emit: [{ event: '/admin#welcome', reply: true, data: { nsp: '/admin', auth: body.data } }] }),
  '/admin#disconnect': () => ({}),
  // io.of('/admin'): socket.on('whoami', ack => ack({ nsp: '/admin' }))
  '/admin#whoami': () => ({ data: { nsp: '/admin' } }),
};

export class Backend {
  constructor() {
    this.events = [];
    this.connects = [];
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        const request = JSON.parse(body);
        const answer = req.url === '/connect' ? this.connect(request) : this.event(request);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      });
    });
  }

  async start() {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = this.server.address().port;
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  connect(request) {
    this.connects.push(request);
    const auth = request.auth || {};
    const token = auth.token ?? request.query.token;
    if (token !== 'good') return { error: { status: 401, message: 'bad token' } };
    return { result: { name: auth.name, rooms: auth.rooms || [] } };
  }

  event(request) {
    this.events.push(request);
    const handler = HANDLERS[request.event];
    if (!handler) return { error: { code: 'no_handler', message: `no handler for ${request.event}` } };
    return { result: handler(request) };
  }

  async stop() {
    this.server.closeAllConnections();
    this.server.close();
  }
}
