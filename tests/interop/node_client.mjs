#!/usr/bin/env node
// Interop battery of Node's `ws` (from tests/js) as a client against an echo server.
//
// Usage: node_client.mjs URL
//
// Each check opens its own connection, so one failure does not hide the rest,
// and prints `ok - NAME` or `not ok - NAME: DETAIL`. Exits 1 if any check
// failed. The server must echo text as text and binary as binary, and answer
// a close with the client's own code and reason.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../js/package.json', import.meta.url));
const WebSocket = require('ws');

const CHECK_TIMEOUT_MS = 20_000;
const TOTAL_TIMEOUT_MS = 30_000;
const BIG = 16 * 1024 * 1024;
const UNICODE = 'héllo wörld — ünïcödé: 日本語, Ελληνικά, emoji 🎉🚀';

function expect(condition, detail) {
  if (!condition) throw new Error(detail);
}

function describe(data, isBinary) {
  return `${isBinary ? 'binary' : 'text'} of ${data.length}`;
}

// Opens a connection, hands it to `body`, and closes it afterwards.
async function withSocket(url, body) {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const failed = new Promise((_, reject) => ws.on('error', reject));
  await Promise.race([new Promise((resolve) => ws.once('open', resolve)), failed]);
  try {
    return await Promise.race([body(ws, closed), failed]);
  } finally {
    ws.terminate();
  }
}

// Resolves with the next event `name` of `ws`, or rejects if the connection closes first.
function next(ws, name, value = (data) => data) {
  return new Promise((resolve, reject) => {
    ws.once(name, (...args) => resolve(value(...args)));
    ws.once('close', (code, reason) => reject(new Error(`connection closed (${code} ${reason}) before a ${name}`)));
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
  const url = process.argv[2];
  if (!url || process.argv.length !== 3) {
    console.error('usage: node_client.mjs URL');
    process.exit(2);
  }
  const total = setTimeout(() => {
    console.log(`not ok - battery: did not finish within ${TOTAL_TIMEOUT_MS / 1000}s`);
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);
  const results = [];
  for (const [name, check] of CHECKS) results.push(await runCheck(name, check, url));
  clearTimeout(total);
  const passed = results.filter(Boolean).length;
  console.log(`node_client: ${passed} of ${results.length} checks passed against ${url}`);
  process.exit(passed === results.length ? 0 : 1);
}

main();
