// Room history and recovery through the browser client web/switchboard.js,
// in headless Chromium against real servers: a client whose node is killed
// fails over to the other node of a Redis cluster and gets every message
// published meanwhile exactly once and in order; on one node without Redis,
// a client with `acks` whose connection is cut (by a TCP proxy between it
// and the server) does the same, acknowledging what it processed; a node
// that lost its history (restarted) makes the client report the failed
// recovery; `history` pages the stored messages.
//
//   node --test tests/browser/history.test.mjs   (after cargo build --release --bin switchboard)
//
// The cluster test needs redis-server (scripts/setup installs it); it runs
// its own on a free loopback port, nothing written to disk, stopped by PID.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { ARTIFACTS, Server, ensureArtifacts, freePort, launchBrowser, openClientPage, waitFor, within } from './harness.mjs';

const MESSAGES = 1000; // published while the client is away
const BEFORE = 3; // published before, so that the client has a position
const HISTORY = 'feed*';

let chrome;
const servers = [];
const proxies = [];
const redises = [];

/** `redis-server` on a free loopback port, as tests/e2e/redisproc.py starts it. */
class Redis {
  constructor(port) {
    this.port = port;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-redis-'));
    this.child = null;
    this.log = '';
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  static available() {
    return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  }

  async start() {
    const child = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = once(child, 'exit');
    const logFile = fs.createWriteStream(path.join(ARTIFACTS, 'history-redis.log'));
    const record = (chunk) => {
      this.log += chunk;
      logFile.write(chunk);
    };
    child.stdout.on('data', record);
    child.stderr.on('data', record);
    child.on('exit', () => logFile.end());
    await waitFor(`redis-server on port ${this.port} to answer PING`, async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}):\n${this.log}`);
      }
      return (await this.ping()) === '+PONG';
    }, 10000, 50);
  }

  ping() {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, '127.0.0.1');
      let reply = '';
      socket.setTimeout(1000, () => socket.destroy(new Error('no answer to PING')));
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (chunk) => {
        reply += chunk;
        if (reply.includes('\r\n')) {
          socket.end();
          resolve(reply.trim());
        }
      });
      socket.on('error', reject);
    });
  }

  async stop() {
    const child = this.child;
    this.child = null;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await within(5000, 'redis-server to exit', this.exited);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A TCP proxy on a free loopback port in front of `target`: `cut()` resets
 * every connection through it (the browser sees its socket drop, as on a
 * network failure), and while `refusing` new connections are reset at once.
 */
class Proxy {
  constructor(target) {
    this.target = target;
    this.refusing = false;
    this.pairs = new Set();
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen() {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = this.server.address().port;
    return this;
  }

  accept(client) {
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.target, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  cut() {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async close() {
    this.cut();
    this.server.close();
  }
}

before(async () => {
  ensureArtifacts();
  chrome = await launchBrowser();
});

after(async () => {
  try {
    if (chrome) await chrome.close();
  } finally {
    for (const proxy of proxies) await proxy.close().catch(() => {});
    for (const server of servers) await server.stop('SIGKILL').catch(() => {});
    for (const redis of redises) await redis.stop().catch(() => {});
  }
});

async function startServer(logName, args) {
  const server = new Server(await freePort(), { logName, args });
  servers.push(server);
  await server.start();
  return server;
}

async function startProxy(port) {
  const proxy = await new Proxy(port).listen();
  proxies.push(proxy);
  return proxy;
}

const wsUrl = (port) => `ws://127.0.0.1:${port}/ws`;

/**
 * A page of `server`'s origin with switchboard.js and a recording client
 * factory: window.start(options) makes `window.sb`, records what its
 * application receives in `window.got` ({data, offset, epoch}), its
 * history events in `window.events`, its disconnects in `window.closes`,
 * and every frame it sends in `window.sent`.
 */
async function openRecordingPage(server) {
  const page = await openClientPage(chrome.browser, server);
  await page.evaluate(() => {
    window.got = [];
    window.events = [];
    window.closes = [];
    window.sent = [];
    class RecordingSocket extends WebSocket {
      send(text) {
        window.sent.push(JSON.parse(text));
        super.send(text);
      }
    }
    window.start = async (url, options) => {
      const sb = new Switchboard(url, { ...options, WebSocket: RecordingSocket });
      window.sb = sb;
      sb.on('n', (data, msg) => got.push({ data, offset: msg.offset, epoch: msg.epoch }));
      for (const name of ['recovered', 'recovery_failed', 'history_reset']) {
        sb.on(name, (info) => events.push({ name, ...info }));
      }
      sb.on('disconnect', (info) => closes.push(info.code));
      await until(() => sb.status === 'connected', 5000);
      return sb.join('feed');
    };
  });
  return page;
}

/** Publishes data from, to, … in order to room `feed`; returns the offsets given. */
async function publishRange(server, from, to) {
  const offsets = [];
  for (let n = from; n <= to; n++) {
    const answer = await server.publish({ room: 'feed', event: 'n', data: n });
    offsets.push(answer.offset);
  }
  return offsets;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Waits until the page's application has `count` messages, then a moment for any extra one. */
async function receivedAll(page, count, ms = 30000) {
  try {
    await waitFor(`the page to receive ${count} messages`, async () =>
      (await page.evaluate(() => got.length)) >= count, ms, 100);
  } catch (error) {
    // Say what did arrive: how many, the first one out of sequence, the events.
    const seen = await page.evaluate(() => ({
      count: got.length, events, closes, status: sb.status, url: sb.url,
      skip: got.findIndex((m, i) => m.data !== i + 1),
    }));
    const at = seen.skip === -1 ? '' : `; the first one out of sequence is #${seen.skip + 1}`;
    error.message += ` (got ${seen.count}${at}; status ${seen.status} at ${seen.url}; `
      + `events ${JSON.stringify(seen.events)}; closes ${JSON.stringify(seen.closes)})`;
    throw error;
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  return page.evaluate(() => got.slice());
}

function expectedProblemsOnly(page) {
  return page.problems.filter((p) => !/WebSocket connection to .* failed/.test(p) && !/ERR_CONNECTION_(REFUSED|RESET)/.test(p));
}

/**
 * How the client is cut off from node A, and the close code it sees: its
 * socket reset under it (a network failure), node A SIGKILLed, or node A
 * restarted (SIGTERM: `end` and 1001, then started again).
 */
const CUTS = {
  'its socket is reset': { code: 1006, cut: async (toA) => toA.cut() },
  'its node is SIGKILLed': { code: 1006, cut: async (toA, nodeA) => nodeA.stop('SIGKILL') },
  'its node restarts': {
    code: 1001,
    cut: async (toA, nodeA) => {
      await nodeA.stop('SIGTERM');
      await nodeA.start();
    },
  },
};

for (const [how, { code, cut }] of Object.entries(CUTS)) test(`a client cut off from its node (${how}) gets every message once, in order, from the other node`, {
  timeout: 90000,
  skip: Redis.available() ? false : 'redis-server is missing (scripts/setup installs it)',
}, async () => {
  const redis = new Redis(await freePort());
  redises.push(redis);
  await redis.start();
  const cluster = ['--redis', redis.url, '--history', HISTORY, '--cluster-ttl', '2', '--cluster-heartbeat', '0.5'];
  const nodeA = await startServer('history-node-a', cluster);
  const nodeB = await startServer('history-node-b', cluster);
  // The way to node B is held shut while the first half is published, so
  // that that half can only reach the client by replay.
  const toB = await startProxy(nodeB.port);
  // Node A is reached through a proxy too: it can reset the client's socket,
  // and it refuses the client once it is cut off, so that it goes to node B.
  const toA = await startProxy(nodeA.port);
  const page = await openRecordingPage(nodeB);

  const joined = await page.evaluate(([a, b]) => start(a, {
    urls: [a, b], reconnect: { attempts: Infinity, minDelay: 100, maxDelay: 300 },
  }), [wsUrl(toA.port), wsUrl(toB.port)]);
  assert.equal(joined.room, 'feed');
  assert.equal(typeof joined.epoch, 'string', `the join of a room with history gives its epoch: ${JSON.stringify(joined)}`);
  assert.equal(joined.offset, 0);

  // Node B knows of the member on node A (one Redis hop) before anything is sent.
  await page.evaluate(async (b) => {
    const probe = new Switchboard(b, { reconnect: false });
    try {
      await until(() => probe.status === 'connected');
      const deadline = Date.now() + 5000;
      for (;;) {
        const members = await probe.users('feed');
        if (members.some((m) => m.id === sb.id)) return;
        if (Date.now() > deadline) throw new Error(`node B does not list ${sb.id} in feed`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      probe.close();
    }
  }, wsUrl(nodeB.port));

  assert.deepEqual(await publishRange(nodeB, 1, BEFORE), range(1, BEFORE));
  await receivedAll(page, BEFORE, 5000);

  toB.refusing = true;
  toA.refusing = true;
  await cut(toA, nodeA);
  await waitFor('the client to notice it is cut off', async () =>
    (await page.evaluate(() => sb.status)) === 'reconnecting', 5000);

  const half = BEFORE + MESSAGES / 2;
  const offsets = await publishRange(nodeB, BEFORE + 1, half);
  // The second half is published while the client comes back and recovers.
  toB.refusing = false;
  offsets.push(...await publishRange(nodeB, half + 1, BEFORE + MESSAGES));
  assert.deepEqual(offsets, range(BEFORE + 1, BEFORE + MESSAGES), 'POST /api/publish answers each offset');

  const got = await receivedAll(page, BEFORE + MESSAGES);
  const r = await page.evaluate(() => ({
    events: events.slice(), url: sb.url, positions: sb.positions, closes: closes.slice(),
    rejoins: sent.filter((m) => m.event === 'join' && m.since),
  }));
  assert.deepEqual(got.map((m) => m.data), range(1, BEFORE + MESSAGES), 'every message once, in order');
  assert.deepEqual(got.map((m) => m.offset), range(1, BEFORE + MESSAGES));
  assert.ok(got.every((m) => m.epoch === joined.epoch), 'one epoch throughout');
  assert.equal(r.url, wsUrl(toB.port), 'on node B now');
  assert.deepEqual(r.positions, { feed: { epoch: joined.epoch, offset: BEFORE + MESSAGES } });
  assert.deepEqual(r.rejoins.map((m) => m.since), [{ epoch: joined.epoch, offset: BEFORE }],
    'rejoined once, from the last message received');
  assert.equal(r.events.length, 1, `history events: ${JSON.stringify(r.events)}`);
  assert.equal(r.events[0].name, 'recovered');
  assert.ok(r.events[0].replayed >= MESSAGES / 2 && r.events[0].replayed <= MESSAGES,
    `replayed ${r.events[0].replayed}: at least the half published while node B was out of reach`);
  assert.deepEqual(r.closes, [code]);
  await page.evaluate(() => sb.close());
  assert.deepEqual(expectedProblemsOnly(page), []);
  await page.context().close();
});

test('one node, acks: a cut connection resumes from what was processed; history pages; a lost history is reported', {
  timeout: 90000,
}, async () => {
  const node = await startServer('history-solo', ['--history', HISTORY]);
  const proxy = await startProxy(node.port);
  const page = await openRecordingPage(node);

  const joined = await page.evaluate((url) => start(url, {
    acks: true, reconnect: { attempts: Infinity, minDelay: 50, maxDelay: 200 },
  }), wsUrl(proxy.port));
  assert.equal(typeof joined.epoch, 'string', `the join of a room with history gives its epoch: ${JSON.stringify(joined)}`);
  assert.equal(joined.offset, 0);
  assert.equal(await page.evaluate(() => sb.url), wsUrl(proxy.port));

  assert.deepEqual(await publishRange(node, 1, BEFORE), range(1, BEFORE));
  await receivedAll(page, BEFORE, 5000);
  // Acknowledged within 100 ms or so of being processed.
  await page.evaluate((n) => until(() => sent.some((m) => m.event === 'received' && m.data.feed === n), 2000), BEFORE);

  proxy.refusing = true;
  proxy.cut();
  await waitFor('the client to notice the cut', async () =>
    (await page.evaluate(() => sb.status)) === 'reconnecting', 5000);
  const sentBefore = await page.evaluate(() => sent.length);
  const offsets = await publishRange(node, BEFORE + 1, BEFORE + MESSAGES);
  assert.deepEqual(offsets, range(BEFORE + 1, BEFORE + MESSAGES));
  proxy.refusing = false;

  const got = await receivedAll(page, BEFORE + MESSAGES);
  let last = BEFORE + MESSAGES;
  await page.evaluate((n) => until(() => sent.some((m) => m.event === 'received' && m.data.feed === n), 2000), last);
  const r = await page.evaluate((from) => ({
    events: events.slice(), closes: closes.slice(),
    rejoins: sent.filter((m) => m.event === 'join' && m.since),
    acks: sent.slice(from).filter((m) => m.event === 'received').map((m) => m.data),
  }), sentBefore);
  assert.deepEqual(got.map((m) => m.data), range(1, last), 'every message once, in order');
  assert.deepEqual(got.map((m) => m.offset), range(1, last));
  assert.deepEqual(r.rejoins.map((m) => m.since), [{ epoch: joined.epoch, offset: BEFORE }],
    'rejoined from the last message processed');
  assert.deepEqual(r.events, [{ name: 'recovered', room: 'feed', replayed: MESSAGES }]);
  assert.deepEqual(r.closes, [1006], 'no close but the cut (4002 would mean too many unacknowledged)');
  // Cumulative acknowledgements: only rising offsets, batched (at most 100
  // messages a batch and none empty), ending at the last message.
  const acked = r.acks.map((a) => a.feed);
  assert.ok(acked.length >= MESSAGES / 100 && acked.length <= MESSAGES / 10, `${acked.length} acknowledgements`);
  assert.ok(acked.every((offset, i) => offset > (i ? acked[i - 1] : BEFORE) && offset - (i ? acked[i - 1] : BEFORE) <= 100),
    `acknowledged ${JSON.stringify(acked)}`);
  assert.equal(acked[acked.length - 1], last);
  assert.ok(r.acks.every((a) => Object.keys(a).join() === 'feed'));

  // A second cut, with fewer than a batch of acknowledgements missed: the
  // end of a replay is acknowledged too, by the timer.
  proxy.refusing = true;
  proxy.cut();
  await waitFor('the client to notice the second cut', async () =>
    (await page.evaluate(() => sb.status)) === 'reconnecting', 5000);
  const more = 42;
  await publishRange(node, last + 1, last + more);
  proxy.refusing = false;
  const again = await receivedAll(page, last + more, 10000);
  assert.deepEqual(again.map((m) => m.data), range(1, last + more), 'every message once, in order');
  await page.evaluate((n) => until(() => sent.some((m) => m.event === 'received' && m.data.feed === n), 2000), last + more);
  const second = await page.evaluate(() => ({
    rejoin: sent.filter((m) => m.event === 'join' && m.since).pop(), event: events[events.length - 1],
  }));
  assert.deepEqual(second.rejoin.since, { epoch: joined.epoch, offset: last });
  assert.deepEqual(second.event, { name: 'recovered', room: 'feed', replayed: more });
  last += more;

  // Reading back: a page of the stored messages, and the error for a room without history.
  const pages = await page.evaluate(async (n) => ({
    page: await sb.history('feed', { after: n - 3, limit: 2 }),
    end: await sb.history('feed', { after: n }),
    none: await failure(sb.history('lobby')),
  }), last);
  assert.equal(pages.page.epoch, joined.epoch);
  assert.equal(pages.page.offset, last);
  assert.equal(pages.page.oldest, last - 1000 + 1, 'the newest 1,000 are kept (size)');
  assert.deepEqual(pages.page.messages.map((m) => [m.offset, m.data]), [[last - 2, last - 2], [last - 1, last - 1]]);
  assert.deepEqual(pages.end.messages, []);
  assert.equal(pages.none.code, 'no_history');

  // The node restarts: its history (in memory) is gone, and with it the
  // room's epoch. The client cannot recover and says so; the room goes on
  // in the new epoch.
  await node.stop('SIGKILL');
  await node.start();
  const failed = await page.evaluate(() => until(() => events.find((e) => e.name === 'recovery_failed'), 10000));
  assert.equal(failed.room, 'feed');
  assert.notEqual(failed.epoch, joined.epoch);
  assert.equal(failed.offset, 0);
  assert.deepEqual(await publishRange(node, last + 1, last + 1), [1]);
  const all = await receivedAll(page, last + 1, 5000);
  assert.deepEqual(all[last], { data: last + 1, offset: 1, epoch: failed.epoch });
  const end = await page.evaluate(() => ({ positions: sb.positions, events: events.map((e) => e.name) }));
  assert.deepEqual(end.positions, { feed: { epoch: failed.epoch, offset: 1 } });
  assert.deepEqual(end.events, ['recovered', 'recovered', 'recovery_failed'], 'no history_reset: the join told of the new epoch');
  await page.evaluate(() => sb.close());
  assert.deepEqual(expectedProblemsOnly(page), []);
  await page.context().close();
});
