// The official socket.io-client (tests/js/package.json pins it) against
// `switchboard serve`, its application logic in a connect and event proxy
// (socketio_backend.mjs) as docs/SOCKETIO.md maps a Socket.IO server's
// handlers: auth accepted and refused, events, acks, rooms, binary,
// namespaces, disconnect reasons, reconnection after a restart, both
// transports and the upgrade, a native client in the same room, and
// malformed packets.
//
//   node --test tests/browser/socketio.test.mjs   (after cargo build --release --bin switchboard)

import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { Server, ensureArtifacts, freePort, sleep, waitFor, within } from './harness.mjs';
import { Backend } from './socketio_backend.mjs';

const require = createRequire(new URL('../js/package.json', import.meta.url));
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const T = { timeout: 30000 };
const GOOD = { token: 'good' };

/** Server flags: the backend as both proxies, three namespaces, fast pings. */
function serverArgs(backend) {
  return [
    '--connect-proxy', `${backend.url}/connect`,
    '--event-proxy', `${backend.url}/event`,
    '--socketio-namespaces', '/,/chat,/admin',
    '--socketio-ping-interval', '0.5',
    '--socketio-ping-timeout', '1',
  ];
}

/** A connected client (rejects with the connect_error). */
async function connect(url, options = {}) {
  const socket = io(url, { reconnection: false, forceNew: true, auth: GOOD, ...options });
  try {
    await within(10000, `connect to ${url}`, new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    }));
  } catch (error) {
    socket.close();
    throw error;
  }
  return socket;
}

/** The next `event` on `socket`, with all its arguments. */
function next(socket, event, ms = 5000) {
  return within(ms, `${event} on ${socket.nsp}`, new Promise((resolve) => socket.once(event, (...args) => resolve(args))));
}

function emitWithAck(socket, ...args) {
  return within(5000, `the ack of ${args[0]}`, socket.emitWithAck(...args));
}

describe('socket.io-client against switchboard serve', () => {
  let backend;
  let server;
  const open = [];
  const client = async (path = '', options = {}) => {
    const socket = await connect(`${server.base}${path}`, options);
    open.push(socket);
    return socket;
  };

  before(async () => {
    ensureArtifacts();
    backend = await new Backend().start();
    server = new Server(await freePort(), { logName: 'socketio', args: serverArgs(backend) });
    await server.start();
  });

  after(async () => {
    for (const socket of open) socket.close();
    if (server) await server.stop('SIGKILL').catch(() => {});
    if (backend) await backend.stop();
  });

  test('serves the pinned socket.io-client browser build at /socket.io/socket.io.js', T, async () => {
    const res = await fetch(`${server.base}/socket.io/socket.io.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /javascript/);
    const dist = new URL('../js/node_modules/socket.io-client/dist/socket.io.min.js', import.meta.url);
    const pinned = fs.readFileSync(dist, 'utf8');
    const stale = 'web/socket.io.min.js is not the pinned client\'s dist/socket.io.min.js: copy it and rebuild';
    assert.equal(await res.text(), pinned, stale);
  });

  test('auth is handed to the connect proxy: accepted with its name, refused with its reason', T, async () => {
    const ready = new Promise((resolve) => {
      const socket = io(server.base, { reconnection: false, forceNew: true, auth: { token: 'good', name: 'ann' } });
      open.push(socket);
      socket.once('ready', (data) => resolve([socket, data]));
    });
    const [socket, data] = await within(5000, 'ready', ready);
    assert.equal(data.id, socket.id, 'the Socket.IO id is the hub id');
    assert.equal(data.name, 'ann');
    const asked = backend.connects.find((c) => c.auth?.name === 'ann');
    assert.deepEqual(asked.auth, { token: 'good', name: 'ann' });
    assert.equal(asked.path, '/socket.io/');

    const refused = await connect(server.base, { auth: { token: 'bad' } }).then(() => null, (error) => error);
    assert.ok(refused, 'a bad token is refused');
    assert.equal(refused.message, 'bad token');
    assert.equal(refused.data.status, 401);
  });

  test('events both ways: event:hello on connect, gpio:21 answered with true', T, async () => {
    const socket = io(server.base, { reconnection: false, forceNew: true, auth: GOOD });
    open.push(socket);
    const hello = next(socket, 'event:hello');
    await next(socket, 'connect');
    assert.deepEqual(await hello, [], 'emitted without arguments');
    const answer = next(socket, 'gpio:21');
    socket.emit('gpio:21');
    assert.deepEqual(await answer, [true]);
  });

  test('acks with arguments, asked by the client and by the server', T, async () => {
    const socket = await client();
    assert.deepEqual(await emitWithAck(socket, 'echo', { a: 1 }), { a: 1 }, 'one argument is the data');
    assert.deepEqual(await emitWithAck(socket, 'echo', 1, 'two', null), [1, 'two', null], 'several are its array');
    assert.deepEqual(await emitWithAck(socket, 'join', 'lobby'), { room: 'lobby', members: 1 });
    const users = await emitWithAck(socket, 'users', { room: 'lobby' });
    assert.deepEqual(users.map((u) => u.id), [socket.id]);
    const failed = await emitWithAck(socket, 'nothing');
    assert.equal(failed.error.code, 'no_handler', 'an error is the ack argument {error}');
    // The other way: the server asks, the client's callback answers.
    socket.once('question', (question, callback) => callback(`${question} 42`, { n: 1 }));
    socket.emit('ask-me');
    const answer = await waitFor('the answer at the backend', () =>
      backend.events.find((e) => e.event === 'ack' && e.connection.id === socket.id));
    assert.deepEqual(answer.data, { id: 7, data: ['what? 42', { n: 1 }] });
    // Past the ping interval and timeout: the heartbeat is answered.
    await sleep(1800);
    assert.ok(socket.connected);
  });

  test('rooms through the server-side handlers', T, async () => {
    const rooms = ['lobby2'];
    const a = await client('', { auth: { ...GOOD, rooms } });
    const b = await client('', { auth: { ...GOOD, rooms } });
    const outsider = await client();
    let leaked = false;
    outsider.on('chat', () => { leaked = true; });
    const heard = next(b, 'chat');
    a.emit('say', { room: 'lobby2', text: 'hi room' });
    assert.deepEqual(await heard, ['hi room']);
    // The outsider's own message comes after anything it could have heard.
    await emitWithAck(outsider, 'echo', 0);
    assert.equal(leaked, false);
  });

  test('binary payloads both ways, in events and acks', T, async () => {
    const socket = await client();
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
    const back = next(socket, 'file');
    const ack = await emitWithAck(socket, 'file', bytes);
    assert.ok(Buffer.isBuffer(ack.got), 'the ack carries a Buffer');
    assert.deepEqual([...ack.got], [...bytes]);
    const [echoed] = await back;
    assert.deepEqual([...echoed], [...bytes]);
    const event = backend.events.find((e) => e.event === 'file');
    assert.deepEqual(event.data, { $binary: bytes.toString('base64') }, 'the backend sees base64');
  });

  test('two namespaces on one connection, each with its own handlers', T, async () => {
    const root = await client();
    const chat = await connect(`${server.base}/chat`, { forceNew: false });
    // The second namespace of that connection: its own connection handler.
    const admin = io(`${server.base}/admin`, { reconnection: false, auth: { ...GOOD, as: 'admin' } });
    open.push(chat, admin);
    const [welcome] = await next(admin, 'welcome');
    assert.deepEqual(welcome, { nsp: '/admin', auth: { token: 'good', as: 'admin' } });
    assert.equal(admin.io, chat.io, 'one Manager, one Engine.IO connection');
    assert.deepEqual(await emitWithAck(chat, 'whoami'), { nsp: '/chat', id: chat.id });
    assert.deepEqual(await emitWithAck(admin, 'whoami'), { nsp: '/admin' });
    let rootHeard = false;
    root.on('shout', () => { rootHeard = true; });
    const shout = next(chat, 'shout');
    chat.emit('shout', 'hey');
    assert.deepEqual(await shout, ['HEY']);
    assert.equal(rootHeard, false);
    const refused = await connect(`${server.base}/nope`).then(() => null, (error) => error);
    assert.equal(refused?.message, 'Invalid namespace');
    // Leaving a namespace: its own disconnect handler; the connection stays.
    admin.disconnect();
    await waitFor('/admin#disconnect at the backend', () =>
      backend.events.some((e) => e.event === '/admin#disconnect' && e.connection.id === chat.id));
    assert.deepEqual(await emitWithAck(chat, 'whoami'), { nsp: '/chat', id: chat.id });
  });

  test('disconnect reason of a client leaving, as the hub and the event proxy see it', T, async () => {
    const socket = await client();
    const id = socket.id;
    const left = next(socket, 'disconnect');
    socket.disconnect();
    assert.equal((await left)[0], 'io client disconnect');
    const gone = await waitFor('the hub to see it leave', () =>
      backend.events.find((e) => e.event === 'disconnect' && e.connection.id === id));
    assert.equal(gone.data.code, 1000);
    assert.equal(gone.data.reason, 'client namespace disconnect');
  });

  test('polling upgrades to WebSocket; polling alone when WebSocket is disabled', T, async () => {
    const upgraded = io(server.base, { reconnection: false, forceNew: true, auth: GOOD });
    open.push(upgraded);
    const upgrade = within(5000, 'the upgrade', new Promise((resolve) => {
      upgraded.io.on('open', () => upgraded.io.engine.once('upgrade', (transport) => resolve(transport.name)));
    }));
    await next(upgraded, 'connect');
    assert.equal(await upgrade, 'websocket');
    const id = upgraded.id;
    assert.deepEqual(await emitWithAck(upgraded, 'echo', 'after'), 'after');
    assert.equal(upgraded.id, id, 'the same connection across the upgrade');

    const polling = await client('', { transports: ['polling'] });
    assert.equal(polling.io.engine.transport.name, 'polling');
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    assert.match(metrics, /^# TYPE switchboard_socketio_polling_sessions gauge$/m);
    assert.match(metrics, /^switchboard_socketio_polling_sessions [1-9]\d*$/m);
    assert.deepEqual(await emitWithAck(polling, 'echo', { over: 'polling' }), { over: 'polling' });
    const bytes = Buffer.from('binary over polling');
    const back = next(polling, 'file');
    await emitWithAck(polling, 'file', bytes);
    assert.equal(Buffer.from((await back)[0]).toString(), 'binary over polling');
    // Long polls outlast pings: still connected past interval + timeout.
    await sleep(1800);
    assert.ok(polling.connected);
    assert.equal(polling.io.engine.transport.name, 'polling');
  });

  test('a Socket.IO client and a native client in one room, and the HTTP publish', T, async () => {
    const sio = await client('', { auth: { ...GOOD, rooms: ['mixed'] } });
    const native = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=good`);
    const inbox = [];
    native.on('message', (data) => inbox.push(JSON.parse(data)));
    await once(native, 'open');
    native.send(JSON.stringify({ event: 'join', room: 'mixed', ack: 1 }));
    await waitFor('the native join', () => inbox.some((m) => m.event === 'ack' && m.ack === 1));

    const fromNative = next(sio, 'chat');
    native.send(JSON.stringify({ event: 'chat', room: 'mixed', data: { text: 'from ws' } }));
    assert.deepEqual(await fromNative, [{ text: 'from ws' }]);

    sio.emit('say', { room: 'mixed', text: 'from socket.io' });
    const relayed = await waitFor('the relay', () => inbox.find((m) => m.event === 'chat' && m.data === 'from socket.io'));
    assert.equal(relayed.room, 'mixed');

    const published = next(sio, 'news');
    const answer = await server.publish({ room: 'mixed', event: 'news', data: { n: 1 } });
    assert.equal(answer.delivered, 2);
    assert.deepEqual(await published, [{ n: 1 }]);
    await waitFor('the native copy', () => inbox.find((m) => m.event === 'news'));
    native.close();
  });
});

describe('socket.io-client reconnects after a server restart', () => {
  let backend;
  let server;
  let socket;

  before(async () => {
    ensureArtifacts();
    backend = await new Backend().start();
    server = new Server(await freePort(), { logName: 'socketio-restart', args: serverArgs(backend) });
    await server.start();
  });

  after(async () => {
    if (socket) socket.close();
    if (server) await server.stop('SIGKILL').catch(() => {});
    if (backend) await backend.stop();
  });

  test('transport close, then a new connection to the new server', T, async () => {
    socket = io(server.base, { auth: GOOD, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await next(socket, 'connect');
    const first = socket.id;
    const reason = next(socket, 'disconnect');
    await server.stop('SIGTERM');
    assert.equal((await reason)[0], 'transport close');
    const again = next(socket, 'connect', 15000);
    await server.start();
    await again;
    assert.notEqual(socket.id, first);
    assert.deepEqual(await emitWithAck(socket, 'echo', 'back'), 'back');
  });
});
