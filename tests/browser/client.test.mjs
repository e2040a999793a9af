// The browser client web/switchboard.js on its own, in headless Chromium
// against a real `switchboard serve`: acks and their failures, targets,
// address subscriptions, the offline buffer, giving up, and restoring rooms,
// patterns and name after the server comes back.
//
//   node --test tests/browser/          (after cargo build --release --bin switchboard)

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Server, freePort, launchBrowser, openClientPage, waitFor } from './harness.mjs';

let server;
let chrome;
let page;

before(async () => {
  server = new Server(await freePort(), { logName: 'client-server' });
  await server.start();
  chrome = await launchBrowser();
  // Any page of the server's origin will do; the client comes from /switchboard.js.
  page = await openClientPage(chrome.browser, server);
  await page.evaluate(() => {
    window.ready = (sb) => new Promise((resolve, reject) => {
      if (sb.status === 'connected') return resolve(sb);
      const timer = setTimeout(() => reject(new Error('not connected within 5 s')), 5000);
      sb.once('ready', () => { clearTimeout(timer); resolve(sb); });
    });
  });
});

after(async () => {
  try {
    if (chrome) await chrome.close();
  } finally {
    if (server) await server.stop('SIGKILL').catch(() => {});
  }
});

const T = { timeout: 20000 };

test('connects to ws://HOST/ws by default: status, ready, id and name', T, async () => {
  const result = await page.evaluate(async () => {
    const statuses = [];
    const sb = new Switchboard({ name: 'ann', autoConnect: false });
    sb.on('status', (s) => statuses.push(s));
    const ready = new Promise((resolve) => sb.on('ready', resolve));
    sb.connect();
    const info = await ready;
    const out = { url: sb.url, info, id: sb.id, name: sb.name, statuses: statuses.slice(), status: sb.status };
    sb.close();
    out.after = sb.status;
    return out;
  });
  assert.equal(result.url, `ws://127.0.0.1:${server.port}/ws`);
  assert.equal(result.info.name, 'ann');
  assert.match(result.info.id, /^\S+$/);
  assert.equal(result.id, result.info.id);
  assert.deepEqual(result.statuses, ['connecting', 'connected']);
  assert.equal(result.after, 'gone');
});

test('emit to a room, a connection and everyone; emitWithAck resolves and rejects', T, async () => {
  const r = await page.evaluate(async () => {
    const a = await ready(new Switchboard({ name: 'a' }));
    const b = await ready(new Switchboard({ name: 'b' }));
    const got = [];
    const any = [];
    b.on('chat', function (data, msg) { got.push({ data, from: msg.from, from_name: msg.from_name, room: msg.room, self: this === b }); });
    b.on('*', (event) => any.push(event));
    const joined = await b.join('room1');
    const delivered = await a.emitWithAck('chat', { text: 'to the room' }, { room: 'room1' });
    a.emit('chat', { text: 'to b' }, { to: b.id });
    a.emit('chat', { text: 'to all' }, { broadcast: true, echo: false });
    await until(() => got.length === 3);
    const unknown = await failure(a.emitWithAck('chat', 1, { to: 'nobody' }));
    const noHandler = await failure(a.emitWithAck('nothing-handles-this', 1));
    let twoTargets = null;
    try { a.emit('x', 1, { room: 'r', to: 'y' }); } catch (e) { twoTargets = e.name; }
    let reserved = null;
    try { a.emit('ready', 1); } catch (e) { reserved = e.name; }
    const users = await a.users('room1');
    const out = { joined, delivered, got, any, unknown, noHandler, twoTargets, reserved, users, aId: a.id, bId: b.id };
    a.close(); b.close();
    return out;
  });
  assert.deepEqual(r.joined, { room: 'room1', members: 1 });
  assert.deepEqual(r.delivered, { delivered: 1 });
  assert.deepEqual(r.got, [
    { data: { text: 'to the room' }, from: r.aId, from_name: 'a', room: 'room1', self: true },
    { data: { text: 'to b' }, from: r.aId, from_name: 'a', room: undefined, self: true },
    { data: { text: 'to all' }, from: r.aId, from_name: 'a', room: undefined, self: true },
  ]);
  assert.equal(r.any.filter((e) => e === 'chat').length, 3, `on('*') saw ${r.any}`);
  assert.equal(r.unknown.code, 'unknown_target');
  assert.equal(r.noHandler.code, 'unknown_event');
  assert.equal(r.twoTargets, 'TypeError');
  assert.equal(r.reserved, 'TypeError');
  assert.deepEqual(r.users, [{ id: r.bId, name: 'b' }]);
});

test('userlist, rename and leave; on/once/off', T, async () => {
  const r = await page.evaluate(async () => {
    const a = await ready(new Switchboard({ name: 'ua' }));
    const b = await ready(new Switchboard({ name: 'ub' }));
    const lists = [];
    a.on('userlist', (users, room) => lists.push({ room, names: users.map((u) => u.name) }));
    let onceCount = 0;
    a.once('userlist', () => { onceCount++; });
    await a.join('room2');
    await until(() => lists.length === 1);
    await b.join('room2');
    await until(() => lists.some((l) => l.names.length === 2));
    const renamed = await b.rename('ub2');
    await until(() => lists.some((l) => l.names.includes('ub2')));
    const badName = await failure(b.rename(''));
    const left = await b.leave('room2');
    await until(() => lists[lists.length - 1].names.length === 1);
    const cached = a.userlists.room2.map((u) => u.name);
    a.off('userlist');
    const before = lists.length;
    await b.join('room2');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const out = { lists, onceCount, renamed, badName, bName: b.name, left, cached, silent: lists.length === before };
    a.close(); b.close();
    return out;
  });
  assert.deepEqual(r.lists[0], { room: 'room2', names: ['ua'] });
  assert.ok(r.lists.some((l) => l.names.includes('ub')));
  assert.ok(r.lists.some((l) => l.names.includes('ub2')));
  assert.deepEqual(r.lists[r.lists.length - 1].names, ['ua']);
  assert.equal(r.onceCount, 1);
  assert.deepEqual(r.renamed, { name: 'ub2' });
  assert.equal(r.badName.code, 'invalid_name');
  assert.equal(r.bName, 'ub2');
  assert.deepEqual(r.left, { room: 'room2', members: 1, was_member: true });
  assert.deepEqual(r.cached, ['ua']);
  assert.ok(r.silent, 'off() removed the userlist listener');
});

test('address messages: per-pattern handlers, the address event, unsubscribe', T, async () => {
  const r = await page.evaluate(async () => {
    const a = await ready(new Switchboard());
    const b = await ready(new Switchboard());
    const byPattern = [];
    const all = [];
    await a.subscribe('/s/*/motion', (path, values) => byPattern.push([path, values]));
    await a.subscribe('/s/**');
    a.on('address', (path, values) => all.push([path, values]));
    b.publish('/s/hall/motion', [1, 0.5, 'hall']);
    b.publish('/s/hall/light', [0]);
    await until(() => all.length === 2);
    const gone = await a.unsubscribe('/s/*/motion');
    b.publish('/s/door/motion', []);
    await until(() => all.length === 3);
    const bad = await failure(a.subscribe('no-slash['));
    const out = { byPattern, all, gone, bad, patterns: a.patterns, matches: [
      Switchboard.matchPattern('/a/**', '/a'),
      Switchboard.matchPattern('/a/**', '/a/b/c'),
      Switchboard.matchPattern('/a/?', '/a/bc'),
      Switchboard.matchPattern('/a/b*d', '/a/bxyd'),
      Switchboard.matchPattern('/a/*', '/a/b/c'),
    ] };
    a.close(); b.close();
    return out;
  });
  assert.deepEqual(r.byPattern, [['/s/hall/motion', [1, 0.5, 'hall']]]);
  assert.deepEqual(r.all, [['/s/hall/motion', [1, 0.5, 'hall']], ['/s/hall/light', [0]], ['/s/door/motion', []]]);
  assert.deepEqual(r.gone, { pattern: '/s/*/motion', existed: true });
  assert.equal(r.bad.code, 'invalid_pattern');
  assert.deepEqual(r.patterns, ['/s/**']);
  assert.deepEqual(r.matches, [true, true, false, true, false]);
});

test('messages emitted before the connection wait in a bounded buffer, oldest dropped', T, async () => {
  const r = await page.evaluate(async () => {
    const listener = await ready(new Switchboard());
    await listener.join('buffered');
    const got = [];
    listener.on('n', (data) => got.push(data));
    const sb = new Switchboard({ autoConnect: false, bufferSize: 3 });
    const first = failure(sb.emitWithAck('n', 0, { room: 'buffered' }));
    for (let i = 1; i <= 4; i++) sb.emit('n', i, { room: 'buffered' });
    const buffered = sb.buffered;
    sb.connect();
    await ready(sb);
    await until(() => got.length === 3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const out = { first: await first, buffered, got, after: sb.buffered };
    sb.close(); listener.close();
    return out;
  });
  assert.equal(r.first.code, 'dropped');
  assert.equal(r.buffered, 3);
  assert.deepEqual(r.got, [2, 3, 4]);
  assert.equal(r.after, 0);
});

test('with nobody listening: backoff, ack timeout, reconnection_failed, then gone', T, async () => {
  const deadPort = await freePort();
  const r = await page.evaluate(async (url) => {
    const attempts = [];
    const statuses = [];
    const sb = new Switchboard(url, { reconnect: { attempts: 3, minDelay: 40, maxDelay: 100 } });
    sb.on('reconnecting', (info) => attempts.push(info));
    sb.on('status', (s) => statuses.push(s));
    const gaveUp = new Promise((resolve) => sb.on('reconnection_failed', () => resolve(true)));
    const timedOut = await failure(sb.emitWithAck('x', 1, { broadcast: true, timeout: 60 }));
    const failed = await gaveUp;
    const afterwards = await failure(sb.emitWithAck('x', 1, { broadcast: true }));
    const join = await failure(sb.join('r'));
    return { timedOut, failed, afterwards, join, attempts, statuses, status: sb.status, rooms: sb.rooms };
  }, `ws://127.0.0.1:${deadPort}/ws`);
  assert.equal(r.timedOut.code, 'timeout');
  assert.equal(r.failed, true);
  assert.equal(r.afterwards.code, 'closed');
  assert.equal(r.join.code, 'closed');
  assert.deepEqual(r.attempts.map((a) => a.attempt), [1, 2, 3]);
  // Exponential with jitter: attempt n waits between half and all of min(max, min * 2^(n-1)).
  for (const { attempt, delay } of r.attempts) {
    const base = Math.min(100, 40 * 2 ** (attempt - 1));
    assert.ok(delay >= base / 2 && delay <= base, `attempt ${attempt} waited ${delay} ms`);
  }
  assert.deepEqual(r.statuses, ['reconnecting', 'gone']);
  assert.equal(r.status, 'gone');
  assert.deepEqual(r.rooms, ['r'], 'remembered for the next connect()');
});

test('after the server dies and comes back: rooms, patterns and name are restored', T, async () => {
  await page.evaluate(async () => {
    const sb = new Switchboard({ name: 'zed', reconnect: { attempts: 30, minDelay: 100, maxDelay: 400 } });
    window.zed = sb;
    window.zedLog = [];
    window.zedAddresses = [];
    await ready(sb);
    sb.on('status', (s) => zedLog.push(s));
    sb.on('disconnect', (info) => zedLog.push(`disconnect ${info.code}`));
    await sb.join('keep');
    await sb.subscribe('/z/**', (path, values) => zedAddresses.push([path, values]));
    await sb.rename('zed2');
    window.zedFirstId = sb.id;
  });
  await server.stop('SIGKILL');
  await waitFor('the client to notice', async () => (await page.evaluate(() => zed.status)) === 'reconnecting', 5000);
  const pending = page.evaluate(() => failure(zed.join('later')));
  await server.start();
  const r = await page.evaluate(async () => {
    await until(() => zed.status === 'connected', 10000);
    const other = await ready(new Switchboard());
    const members = await other.users('keep');
    other.publish('/z/1', ['back']);
    await until(() => zedAddresses.length === 1);
    const out = {
      log: zedLog.slice(), newId: zed.id !== zedFirstId, name: zed.name, members, rooms: zed.rooms,
      addresses: zedAddresses, id: zed.id,
    };
    other.close(); zed.close();
    return out;
  });
  assert.deepEqual(await pending, { resolved: { room: 'later', members: 1 } });
  assert.deepEqual(r.log, ['disconnect 1006', 'reconnecting', 'connected']);
  assert.ok(r.newId, 'a new connection has a new id');
  assert.equal(r.name, 'zed2');
  assert.deepEqual(r.members, [{ id: r.id, name: 'zed2' }]);
  assert.deepEqual(r.rooms.sort(), ['keep', 'later']);
  assert.deepEqual(r.addresses, [['/z/1', ['back']]]);
});

test('no script errors', T, async () => {
  const problems = page.problems.filter((p) => !/WebSocket connection to .* failed/.test(p) && !/ERR_CONNECTION_REFUSED/.test(p));
  assert.deepEqual(problems, []);
});
