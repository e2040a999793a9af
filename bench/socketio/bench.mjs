// Socket.IO: `switchboard serve` against Node's socket.io server on this
// machine, with the official socket.io-client as the load (one Node
// process). Three measures, each on a fresh server:
//
// - idle: server RSS growth per connection (/proc/PID/status) with N
//   clients connected and quiet, WebSocket only and with io()'s default
//   (polling handshake, then the upgrade);
// - acks: C clients × W in flight, each emitting `join` with an ack, for
//   S seconds: round trips a second;
// - fanout: R clients in a room, K messages to it from one more client
//   (for switchboard a native /ws client, since a Socket.IO client's
//   events go to server handlers; for Node a socket.io client whose `say`
//   the server relays): deliveries a second.
//
// Server CPU is its utime + stime over the window (/proc/PID/stat), as a
// share of one core, and per round trip or delivery: with one Node
// generator for both, the generator may set the pace, and CPU per event is
// then the fairer comparison.
//
//   taskset -c 1 node bench/socketio/bench.mjs [switchboard|node]...
//   (after cargo build --release --bin switchboard; servers run on core 0)
//   IDLE=2000 ACK_CLIENTS=50 ACK_WINDOW=10 ACK_SECONDS=5 FAN_CLIENTS=200 FAN_MESSAGES=2000

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(path.join(ROOT, 'tests', 'js', 'package.json'));
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const env = (name, value) => Number(process.env[name] || value);
const IDLE = env('IDLE', 2000);
const ACK_CLIENTS = env('ACK_CLIENTS', 50);
const ACK_WINDOW = env('ACK_WINDOW', 10);
const ACK_SECONDS = env('ACK_SECONDS', 5);
const FAN_CLIENTS = env('FAN_CLIENTS', 200);
const FAN_MESSAGES = env('FAN_MESSAGES', 2000);
const TICK = 100; // clock ticks a second (/proc/PID/stat)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

class ServerProcess {
  constructor(kind) {
    this.kind = kind;
  }

  async start() {
    this.port = await freePort();
    const [cmd, args] = this.kind === 'switchboard'
      ? [path.join(ROOT, 'target', 'release', 'switchboard'),
        ['serve', '--port', String(this.port), '--max-handshakes-per-ip', '0', '--max-message-rate', '0',
          '--max-byte-rate', '0', '--log', 'error']]
      : [process.execPath, [path.join(ROOT, 'bench', 'socketio', 'node_server.mjs'), String(this.port)]];
    // The server on core 0; run this script under `taskset -c 1` to keep
    // the generator on the other core (as scripts/bench does).
    this.child = spawn('taskset', ['-c', '0', cmd, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    for (let i = 0; i < 100; i += 1) {
      try {
        const socket = net.connect(this.port, '127.0.0.1');
        await once(socket, 'connect');
        socket.destroy();
        return this;
      } catch {
        await sleep(50);
      }
    }
    throw new Error(`${this.kind} did not start`);
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  rssKiB() {
    const status = fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    return Number(status.match(/VmRSS:\s+(\d+)/)[1]);
  }

  cpuTicks() {
    const fields = fs.readFileSync(`/proc/${this.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
  }

  async stop() {
    this.child.kill('SIGKILL');
    await once(this.child, 'exit');
  }
}

async function connectAll(url, count, options) {
  const sockets = [];
  for (let start = 0; start < count; start += 100) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 100); i += 1) {
      const socket = io(url, { forceNew: true, reconnection: false, ...options });
      sockets.push(socket);
      batch.push(new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      }));
    }
    await Promise.all(batch);
  }
  return sockets;
}

async function idle(kind, transports) {
  const server = await new ServerProcess(kind).start();
  try {
    const warm = await connectAll(server.url, 10, { transports });
    await sleep(1000);
    const before = server.rssKiB();
    const sockets = await connectAll(server.url, IDLE, { transports });
    if (transports === undefined) {
      // io()'s default: wait for every upgrade.
      for (let i = 0; i < 200 && sockets.some((s) => s.io.engine.transport.name !== 'websocket'); i += 1) await sleep(50);
    }
    await sleep(2000);
    const after = server.rssKiB();
    for (const socket of [...warm, ...sockets]) socket.close();
    return { kiB: (after - before) / IDLE };
  } finally {
    await server.stop();
  }
}

async function acks(kind) {
  const server = await new ServerProcess(kind).start();
  try {
    const sockets = await connectAll(server.url, ACK_CLIENTS, { transports: ['websocket'] });
    let done = 0;
    let running = true;
    const loop = async (socket) => {
      while (running) {
        await socket.emitWithAck('join', 'bench');
        done += 1;
      }
    };
    await sleep(500);
    const cpu0 = server.cpuTicks();
    const t0 = performance.now();
    const loops = sockets.flatMap((socket) => Array.from({ length: ACK_WINDOW }, () => loop(socket)));
    await sleep(ACK_SECONDS * 1000);
    const count = done;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (server.cpuTicks() - cpu0) / TICK;
    running = false;
    await Promise.all(loops);
    for (const socket of sockets) socket.close();
    return { perSecond: count / seconds, cpuShare: cpu / seconds, cpuMicros: (cpu * 1e6) / count };
  } finally {
    await server.stop();
  }
}

async function fanout(kind) {
  const server = await new ServerProcess(kind).start();
  try {
    const receivers = await connectAll(server.url, FAN_CLIENTS, { transports: ['websocket'] });
    await Promise.all(receivers.map((socket) => socket.emitWithAck('join', 'fan')));
    let delivered = 0;
    let lastOfFirst = -1;
    receivers.forEach((socket, n) => socket.on('msg', (i) => {
      delivered += 1;
      if (n === 0) lastOfFirst = i;
    }));
    let send;
    let closePublisher;
    if (kind === 'switchboard') {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
      await once(ws, 'open');
      send = (i) => ws.send(JSON.stringify({ event: 'msg', room: 'fan', data: i }));
      closePublisher = () => ws.close();
    } else {
      const [publisher] = await connectAll(server.url, 1, { transports: ['websocket'] });
      send = (i) => publisher.emit('say', { room: 'fan', data: i });
      closePublisher = () => publisher.close();
    }
    const total = FAN_MESSAGES * FAN_CLIENTS;
    const cpu0 = server.cpuTicks();
    const t0 = performance.now();
    // At most 200 messages ahead of the first receiver: no queue overflows.
    for (let i = 0; i < FAN_MESSAGES; i += 1) {
      while (i - lastOfFirst > 200) await sleep(1);
      send(i);
    }
    for (let i = 0; i < 2000 && delivered < total; i += 1) await sleep(5);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (server.cpuTicks() - cpu0) / TICK;
    closePublisher();
    for (const socket of receivers) socket.close();
    return { perSecond: delivered / seconds, complete: delivered === total, cpuShare: cpu / seconds, cpuMicros: (cpu * 1e6) / delivered };
  } finally {
    await server.stop();
  }
}

const kinds = process.argv.slice(2).length ? process.argv.slice(2) : ['switchboard', 'node'];
const round = (x, digits = 1) => Number(x.toFixed(digits));
for (const kind of kinds) {
  const result = {
    server: kind,
    idle_websocket_kib_per_connection: round((await idle(kind, ['websocket'])).kiB, 2),
    idle_upgraded_kib_per_connection: round((await idle(kind, undefined)).kiB, 2),
  };
  const ack = await acks(kind);
  Object.assign(result, { acks_per_second: Math.round(ack.perSecond), acks_server_cpu: `${Math.round(ack.cpuShare * 100)} %`, acks_cpu_us: round(ack.cpuMicros, 2) });
  const fan = await fanout(kind);
  Object.assign(result, { fanout_deliveries_per_second: Math.round(fan.perSecond), fanout_complete: fan.complete, fanout_server_cpu: `${Math.round(fan.cpuShare * 100)} %`, fanout_cpu_us: round(fan.cpuMicros, 2) });
  console.log(JSON.stringify(result));
}
process.exit(0);
