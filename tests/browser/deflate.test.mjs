// Headless Chromium's own WebSocket, which offers permessage-deflate, from an
// empty page served on 127.0.0.1, against
// our servers with compression on: examples/echo (every message compressed,
// threshold 0) and examples/deflate_bench_server at the default threshold of
// 128 bytes. A small proxy between the two reads the frame headers going
// each way, so the tests see that messages were compressed (RSV1 set,
// payload smaller) and not only that the extension was agreed on.
//
// Environment: ECHO_BIN, DEFLATE_SERVER_BIN replace the two examples
// (default target/release/examples/...); CHROMIUM as in harness.mjs.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { ARTIFACTS, ROOT, ensureArtifacts, freePort, launchBrowser, openPage, waitFor, within } from './harness.mjs';

const EXAMPLES = path.join(ROOT, 'target', 'release', 'examples');
const ECHO = process.env.ECHO_BIN || path.join(EXAMPLES, 'echo');
const DEFLATE_SERVER = process.env.DEFLATE_SERVER_BIN || path.join(EXAMPLES, 'deflate_bench_server');
const THRESHOLD = 128;

/** A server example as a child process on 127.0.0.1:PORT, logging to artifacts/browser. */
async function startExample(name, bin, args, port) {
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run cargo build --release --examples`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  const log = fs.createWriteStream(path.join(ARTIFACTS, `${name}.log`));
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  await waitFor(`${name} to listen on ${port}`, async () => {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    return canConnect(port);
  }, 10000, 50);
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await within(5000, `${name} to exit`, exited);
    },
  };
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Reads one direction of a WebSocket connection: the HTTP head, then the
 * header of every frame (payloads are skipped, not kept).
 */
class FrameTap {
  constructor() {
    this.head = null;
    this.pending = Buffer.alloc(0);
    this.skip = 0;
    this.frames = [];
  }

  push(chunk) {
    this.pending = Buffer.concat([this.pending, chunk]);
    if (this.head === null) {
      const end = this.pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.head = this.pending.subarray(0, end).toString('latin1');
      this.pending = this.pending.subarray(end + 4);
    }
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.pending.length);
        this.skip -= n;
        this.pending = this.pending.subarray(n);
        if (this.skip > 0) return;
      }
      const buf = this.pending;
      if (buf.length < 2) return;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (masked) at += 4;
      if (buf.length < at) return;
      this.frames.push({ fin: (buf[0] & 0x80) !== 0, rsv1: (buf[0] & 0x40) !== 0, opcode: buf[0] & 0x0f, len });
      this.pending = buf.subarray(at);
      this.skip = len;
    }
  }

  /** Data frames (text, binary, continuation). */
  get data() {
    return this.frames.filter((frame) => frame.opcode <= 2);
  }
}

/** A TCP proxy on a free port to 127.0.0.1:target, tapping both directions. */
async function tapProxy(target) {
  const taps = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const up = new FrameTap();
    const down = new FrameTap();
    taps.push({ up, down });
    const upstream = net.connect(target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.on('data', (chunk) => {
      up.push(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      down.push(chunk);
      client.write(chunk);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    taps,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/**
 * An empty page on 127.0.0.1: Chromium lets a page reach a loopback
 * WebSocket when the page itself comes from loopback (not from about:blank).
 */
async function blankPageServer() {
  const server = http.createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>permessage-deflate</title>');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** A chat message of exactly `length` bytes. */
function chatJson(seed, length) {
  const words = ['hello', 'lobby', 'deploy', 'coffee', 'switchboard', 'message', 'latency', 'room', 'tonight', 'build'];
  let text = '';
  for (let i = seed; text.length < length; i += 1) text += `${words[(i * 7) % words.length]} `;
  const head = `{"event":"chat","room":"lobby","from":"u${seed}","data":{"text":"`;
  return (head + text).slice(0, Math.max(length - 3, head.length)) + '"}}';
}

/**
 * Runs in the page: opens a WebSocket, sends each message and waits for its
 * echo, closes with 1000. Returns what the page saw.
 */
async function pageSession({ url, messages }) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const queue = [];
  const waiters = [];
  ws.onmessage = (event) => {
    const data = typeof event.data === 'string' ? event.data : { binary: Array.from(new Uint8Array(event.data)) };
    if (waiters.length) waiters.shift()(data);
    else queue.push(data);
  };
  const closed = new Promise((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, wasClean: event.wasClean });
  });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('the WebSocket failed to open'));
  });
  const extensions = ws.extensions;
  const echoes = [];
  for (const message of messages) {
    ws.send(typeof message === 'string' ? message : new Uint8Array(message.binary));
    echoes.push(await new Promise((resolve) => (queue.length ? resolve(queue.shift()) : waiters.push(resolve))));
  }
  ws.close(1000, 'done');
  return { extensions, echoes, close: await closed };
}

let browser;
let pageServer;

before(async () => {
  ensureArtifacts();
  pageServer = await blankPageServer();
  browser = await launchBrowser();
});

after(async () => {
  pageServer?.closeAllConnections();
  pageServer?.close();
  await browser?.close();
});

/**
 * Starts `bin`, puts the tap in front of it, and runs a page session with
 * a message above the threshold, one below, and a compressible binary one.
 */
async function sessionAgainst(name, bin, args) {
  const port = await freePort();
  const server = await startExample(name, bin, args(port), port);
  let proxy;
  let page;
  const big = chatJson(1, 4096);
  const small = chatJson(2, 60);
  const binary = { binary: Array.from({ length: 8192 }, (_, i) => (i % 64) ^ ((i >> 6) % 3)) };
  const messages = [big, small, binary];
  try {
    proxy = await tapProxy(port);
    page = await openPage(browser.browser);
    await page.goto(`http://127.0.0.1:${pageServer.address().port}/`);
    const result = await within(20000, `the page session with ${name}`,
      page.evaluate(pageSession, { url: `ws://127.0.0.1:${proxy.port}/`, messages }));
    assert.deepEqual(page.problems, []);
    assert.equal(proxy.taps.length, 1, 'one connection through the proxy');
    return { result, messages, tap: proxy.taps[0] };
  } finally {
    await page?.context().close();
    proxy?.close();
    await server.stop();
  }
}

function checkSession(name, { result, messages, tap }) {
  assert.match(result.extensions, /^permessage-deflate\b/, `${name}: ws.extensions is ${JSON.stringify(result.extensions)}`);
  assert.match(tap.up.head, /^sec-websocket-extensions:.*permessage-deflate/im, 'Chromium offered permessage-deflate');
  assert.match(tap.down.head, /^HTTP\/1\.1 101 /);
  assert.match(tap.down.head, /^sec-websocket-extensions: *permessage-deflate/im, 'our server accepted it');
  assert.deepEqual(result.echoes, messages, `${name}: every message came back unchanged`);
  assert.deepEqual(result.close, { code: 1000, wasClean: true });
  // One frame per message each way, in order.
  const [bigUp, , binaryUp] = tap.up.data;
  const [bigDown, smallDown, binaryDown] = tap.down.data;
  assert.equal(tap.up.data.length, 3, JSON.stringify(tap.up.data));
  assert.equal(tap.down.data.length, 3, JSON.stringify(tap.down.data));
  for (const [frame, size, what] of [
    [bigUp, 4096, 'Chromium, the message above the threshold'],
    [binaryUp, 8192, 'Chromium, the binary message'],
    [bigDown, 4096, 'our server, the message above the threshold'],
    [binaryDown, 8192, 'our server, the binary message'],
  ]) {
    assert.ok(frame.rsv1 && frame.len < size / 4, `${what}: sent compressed (${JSON.stringify(frame)})`);
  }
  return smallDown;
}

test('Chromium and the echo example agree on permessage-deflate and compress both ways', async () => {
  const session = await sessionAgainst('deflate-echo', ECHO, (port) => [`127.0.0.1:${port}`]);
  const smallDown = checkSession('echo', session);
  // echo compresses every message (threshold 0).
  assert.ok(smallDown.rsv1, `the echo of the small message: ${JSON.stringify(smallDown)}`);
});

test('at the default threshold, our server sends small messages uncompressed to Chromium', async () => {
  const session = await sessionAgainst('deflate-bench-server', DEFLATE_SERVER,
    (port) => ['--deflate', 'default', '--listen', `127.0.0.1:${port}`]);
  const smallDown = checkSession('deflate_bench_server', session);
  assert.ok(session.messages[1].length < THRESHOLD);
  assert.equal(smallDown.rsv1, false, `the echo of the small message: ${JSON.stringify(smallDown)}`);
  assert.equal(smallDown.len, session.messages[1].length);
  assert.match(session.tap.down.head, /server_no_context_takeover; client_no_context_takeover/);
});
