#!/usr/bin/env node
// Interop battery of Node's `ws` (from tests/js) as a client against an echo server.
//
// Usage: node_client.mjs URL [--deflate]
//
// Each check opens its own connection, so one failure does not hide the rest,
// and prints `ok - NAME` or `not ok - NAME: DETAIL`. Exits 1 if any check
// failed. The server must echo text as text and binary as binary, and answer
// a close with the client's own code and reason.
//
// With --deflate every connection offers permessage-deflate (`ws`'s default
// offer and settings: it compresses messages of 1024 bytes and more) and fails
// its check unless `ws.extensions` shows the server accepted it; more checks
// send messages above and below the server's compression threshold (128
// bytes by default), alone and mixed on one connection.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../js/package.json', import.meta.url));
const WebSocket = require('ws');

const CHECK_TIMEOUT_MS = 20_000;
const TOTAL_TIMEOUT_MS = 30_000;
const BIG = 16 * 1024 * 1024;
const UNICODE = 'héllo wörld — ünïcödé: 日本語, Ελληνικά, emoji 🎉🚀';
const THRESHOLD = 128;
const WORDS = ['hello', 'lobby', 'deploy', 'coffee', 'switchboard', 'message', 'latency',
  'room', 'tonight', 'build', 'green', 'review'];

// Set by --deflate: offer permessage-deflate, and insist on it.
let DEFLATE = false;

function expect(condition, detail) {
  if (!condition) throw new Error(detail);
}

function describe(data, isBinary) {
  return `${isBinary ? 'binary' : 'text'} of ${data.length}`;
}

// Opens a connection (compressed with --deflate, which the server must
// accept), hands it to `body`, and closes it afterwards.
async function withSocket(url, body) {
  const ws = new WebSocket(url, { perMessageDeflate: DEFLATE, maxPayload: 0 });
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const failed = new Promise((_, reject) => ws.on('error', reject));
  await Promise.race([new Promise((resolve) => ws.once('open', resolve)), failed]);
  try {
    const negotiated = ws.extensions.split(',').some((e) => e.trim().startsWith('permessage-deflate'));
    expect(negotiated === DEFLATE, `permessage-deflate offered: ${DEFLATE}, accepted: ${JSON.stringify(ws.extensions)}`);
    return await Promise.race([body(ws, closed), failed]);
  } finally {
    ws.terminate();
  }
}

// Resolves with the next event `name` of `ws`, or rejects if the connection closes first.
function next(ws, name, value = (data) => data) {
  return new Promise((resolve, reject) => {
    const onClose = (code, reason) => reject(new Error(`connection closed (${code} ${reason}) before a ${name}`));
    ws.once(name, (...args) => {
      ws.off('close', onClose);
      resolve(value(...args));
    });
    ws.once('close', onClose);
  });
}

function nextMessage(ws) {
  return next(ws, 'message', (data, isBinary) => ({ data, isBinary }));
}

// Sends `message` (a string as text, a Buffer as binary) and checks the echo.
async function echoRoundtrip(url, message) {
  const sentBinary = Buffer.isBuffer(message);
  const sent = sentBinary ? message : Buffer.from(message, 'utf8');
  const { data, isBinary } = await withSocket(url, async (ws) => {
    const reply = nextMessage(ws);
    ws.send(message, { binary: sentBinary });
    return reply;
  });
  expect(isBinary === sentBinary, `sent ${describe(sent, sentBinary)}, got ${describe(data, isBinary)}`);
  expect(sent.equals(data), `${describe(sent, sentBinary)} came back changed`);
}

async function checkFragmented(url) {
  const fragments = ['frag', 'ment', 'ed — ', '日本'];
  const { data, isBinary } = await withSocket(url, async (ws) => {
    const reply = nextMessage(ws);
    fragments.forEach((fragment, i) => ws.send(fragment, { binary: false, fin: i === fragments.length - 1 }));
    return reply;
  });
  expect(!isBinary, 'reply was binary');
  expect(data.toString('utf8') === fragments.join(''), `got ${JSON.stringify(data.toString('utf8'))}`);
}

async function checkPingPong(url) {
  const payload = Buffer.from('ping-payload-\x00\xff', 'latin1');
  const pong = await withSocket(url, async (ws) => {
    const reply = next(ws, 'pong');
    ws.ping(payload);
    return reply;
  });
  expect(payload.equals(pong), `pong carried ${pong.toString('hex')}, ping carried ${payload.toString('hex')}`);
}

async function checkCloseCode(url) {
  const { code, reason } = await withSocket(url, async (ws, closed) => {
    ws.close(4000, 'bye');
    return closed;
  });
  expect(code === 4000, `peer closed with code ${code}`);
  expect(reason === 'bye', `peer closed with reason ${JSON.stringify(reason)}`);
}

// A JSON chat message of exactly `length` bytes.
function chatJson(seed, length) {
  const words = [];
  for (let i = seed; words.join(' ').length < length; i += 1) words.push(WORDS[(i * 7) % WORDS.length]);
  const head = `{"event":"chat","room":"lobby","from":"u${seed}","data":{"text":"`;
  return (head + words.join(' ')).slice(0, Math.max(length - 3, head.length)) + '"}}';
}

async function checkNegotiated(url) {
  const extensions = await withSocket(url, async (ws) => ws.extensions);
  console.log(`# Sec-WebSocket-Extensions: ${extensions}`);
}

// Alternately above and below the threshold, text and binary, some empty, on
// one connection: compressed and plain messages interleave both ways.
async function checkMixed(url) {
  await withSocket(url, async (ws) => {
    for (let i = 0; i < 40; i += 1) {
      const text = i % 10 === 5 ? '' : chatJson(i, i % 2 === 0 ? 300 + 97 * i : 20 + i);
      const binary = i % 4 === 3;
      const reply = nextMessage(ws);
      ws.send(binary ? Buffer.from(text) : text, { binary });
      const { data, isBinary } = await reply;
      expect(isBinary === binary && data.toString('utf8') === text, `message ${i} (${describe(Buffer.from(text), binary)}) came back as ${describe(data, isBinary)}`);
    }
  });
}

const DEFLATE_CHECKS = [
  ['permessage-deflate negotiated', checkNegotiated],
  ['compressed text above the threshold', (url) => echoRoundtrip(url, chatJson(1, 4096))],
  ['text below the threshold', (url) => {
    const message = chatJson(2, 60);
    expect(message.length < THRESHOLD, 'message not below the threshold');
    return echoRoundtrip(url, message);
  }],
  ['40 messages above and below the threshold on one connection', checkMixed],
];

const CHECKS = [
  ['text', (url) => echoRoundtrip(url, 'hello, switchboard')],
  ['binary', (url) => echoRoundtrip(url, Buffer.from([...Array(256).keys()]))],
  ['empty text', (url) => echoRoundtrip(url, '')],
  ['empty binary', (url) => echoRoundtrip(url, Buffer.alloc(0))],
  ['16 MiB binary', (url) => echoRoundtrip(url, Buffer.alloc(BIG, createHash('sha256').update('switchboard').digest()))],
  ['fragmented text', checkFragmented],
  ['ping with payload gets matching pong', checkPingPong],
  ['unicode text', (url) => echoRoundtrip(url, UNICODE)],
  ["close 4000 'bye' echoed", checkCloseCode],
];

function timeout(ms, what) {
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000}s`)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

async function runCheck(name, check, url) {
  const limit = timeout(CHECK_TIMEOUT_MS, 'no answer');
  try {
    await Promise.race([check(url), limit.promise]);
    console.log(`ok - ${name}`);
    return true;
  } catch (error) {
    console.log(`not ok - ${name}: ${error.message}`);
    return false;
  } finally {
    limit.cancel();
  }
}

async function main() {
  const args = process.argv.slice(2);
  const urls = args.filter((arg) => !arg.startsWith('-'));
  const flags = args.filter((arg) => arg.startsWith('-'));
  if (urls.length !== 1 || flags.some((flag) => flag !== '--deflate')) {
    console.error('usage: node_client.mjs URL [--deflate]');
    process.exit(2);
  }
  const url = urls[0];
  DEFLATE = flags.includes('--deflate');
  const checks = DEFLATE ? [...CHECKS, ...DEFLATE_CHECKS] : CHECKS;
  const total = setTimeout(() => {
    console.log(`not ok - battery: did not finish within ${TOTAL_TIMEOUT_MS / 1000}s`);
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);
  const results = [];
  for (const [name, check] of checks) results.push(await runCheck(name, check, url));
  clearTimeout(total);
  const passed = results.filter(Boolean).length;
  console.log(`node_client: ${passed} of ${results.length} checks passed against ${url}`);
  process.exit(passed === results.length ? 0 : 1);
}

main();
