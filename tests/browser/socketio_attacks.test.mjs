// Hostile Socket.IO peers against `switchboard serve`: malformed Engine.IO
// and Socket.IO packets, attachments out of order or past the limit, too
// many namespaces, a client that stops answering pings, and bad polling
// requests. Each one gets a clear refusal (CONNECT_ERROR, a close with its
// reason, an Engine.IO error) and the server goes on serving.
//
//   node --test tests/browser/socketio_attacks.test.mjs   (after cargo build --release --bin switchboard)

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { Server, ensureArtifacts, freePort, waitFor, within } from './harness.mjs';

const require = createRequire(new URL('../js/package.json', import.meta.url));
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const T = { timeout: 30000 };
const MAX_PAYLOAD = 4096;

/** A raw WebSocket on the Engine.IO endpoint that records what it gets. */
class Raw {
  constructor(server, query = '') {
    this.ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket${query}`);
    this.texts = [];
    this.ws.on('message', (data, binary) => { if (!binary) this.texts.push(data.toString()); });
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  async open() {
    await within(5000, 'the WebSocket to open', once(this.ws, 'open'));
    await this.expect((t) => t.startsWith('0{'));
    return this;
  }

  /** Waits for a text message matching `match`; returns it. */
  expect(match, what = String(match)) {
    return waitFor(what, () => this.texts.find(match), 5000, 20);
  }

  /** Opens and joins `/`: returns the connection's Socket.IO id. */
  async connected() {
    await this.open();
    this.ws.send('40');
    const answer = await this.expect((t) => t.startsWith('40{'));
    return JSON.parse(answer.slice(2)).sid;
  }

  send(data, binary = false) {
    this.ws.send(data, { binary });
  }

  async closedWith(code) {
    const close = await within(5000, 'the server to close', this.closed);
    assert.equal(close.code, code, `closed with ${close.code} ${close.reason}`);
    return close.reason;
  }
}

async function get(server, query) {
  const res = await fetch(`${server.base}/socket.io/?EIO=4&transport=polling${query}`, { signal: AbortSignal.timeout(8000) });
  return { status: res.status, body: await res.text() };
}

async function post(server, query, body) {
  const res = await fetch(`${server.base}/socket.io/?EIO=4&transport=polling${query}`, {
    method: 'POST', body, headers: { 'content-type': 'text/plain' }, signal: AbortSignal.timeout(8000),
  });
  return { status: res.status, body: await res.text() };
}

describe('hostile Socket.IO peers', () => {
  let server;

  before(async () => {
    ensureArtifacts();
    server = new Server(await freePort(), {
      logName: 'socketio-attacks',
      args: ['--socketio-ping-interval', '0.5', '--socketio-ping-timeout', '0.5', '--socketio-max-payload', String(MAX_PAYLOAD)],
    });
    await server.start();
  });

  after(async () => {
    if (server) await server.stop('SIGKILL').catch(() => {});
  });

  test('anything but a CONNECT first closes the transport', T, async () => {
    for (const first of ['42["x"]', '4', 'garbage', '0{}', '41']) {
      const raw = await new Raw(server).open();
      raw.send(first);
      await raw.closedWith(1008);
    }
    const binary = await new Raw(server).open();
    binary.send(Buffer.from([1, 2, 3]), true);
    await binary.closedWith(1008);
  });

  test('malformed packets after the CONNECT close with the reason', T, async () => {
    const cases = [
      ['42[', /bad JSON/],
      ['42{"not":"an array"}', /malformed/],
      ['42[1,2]', /malformed/],
      ['43[1]', /malformed/],
      ['44{"message":"x"}', /servers only/],
      ['44', /servers only/],
      ['4299999999999999999["x"]', /ack id/],
      ['4511-["a"]', /11 attachments, at most 10/],
      ['49', /unknown Socket.IO packet/],
      ['42["connect"]', /reserved event names/],
      ['5', /unexpected Engine.IO packet/],
      [`42${'['.repeat(200)}${']'.repeat(200)}`, /bad JSON/],
    ];
    for (const [packet, reason] of cases) {
      const raw = new Raw(server);
      await raw.connected();
      raw.send(packet);
      assert.match(await raw.closedWith(1008), reason, packet);
    }
  });

  test('attachments: unannounced, interrupted, or naming none', T, async () => {
    const unannounced = new Raw(server);
    await unannounced.connected();
    unannounced.send(Buffer.from('x'), true);
    assert.match(await unannounced.closedWith(1008), /no packet announced/);

    const interrupted = new Raw(server);
    await interrupted.connected();
    interrupted.send('452-["f",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    interrupted.send(Buffer.from('x'), true);
    interrupted.send('42["x"]');
    assert.match(await interrupted.closedWith(1008), /before the attachments/);

    const dangling = new Raw(server);
    await dangling.connected();
    dangling.send('451-["f",{"_placeholder":true,"num":7}]');
    dangling.send(Buffer.from('x'), true);
    assert.match(await dangling.closedWith(1008), /names no attachment/);
  });

  test('namespaces past the limit are refused with CONNECT_ERROR, the connection stays', T, async () => {
    const raw = new Raw(server);
    const sid = await raw.connected();
    for (let n = 1; n <= 7; n += 1) {
      raw.send(`40/n${n},`);
      await raw.expect((t) => t === `40/n${n},{"sid":"${sid}"}`);
    }
    raw.send('40/n8,');
    await raw.expect((t) => t.startsWith('44/n8,') && t.includes('too many namespaces'));
    raw.send('40/n1,');
    await raw.expect((t) => t === `40/n1,{"sid":"${sid}"}`, 'a namespace joined may be joined again');
    raw.ws.close();
  });

  test('a client that stops answering pings is closed', T, async () => {
    const raw = new Raw(server);
    await raw.connected();
    await raw.expect((t) => t === '2', 'a ping');
    assert.equal(await raw.closedWith(1000), 'ping timeout');
  });

  test('bad polling requests get Engine.IO errors', T, async () => {
    assert.deepEqual(JSON.parse((await get(server, '&sid=nope')).body), { code: 1, message: 'Session ID unknown' });
    const old = await fetch(`${server.base}/socket.io/?EIO=3&transport=polling`);
    assert.equal(old.status, 400);
    assert.equal((await old.json()).code, 5);
    const flash = await fetch(`${server.base}/socket.io/?EIO=4&transport=flash`);
    assert.equal((await flash.json()).code, 0);
    const stray = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket&sid=nope`);
    const [, response] = await within(5000, 'the refusal', once(stray, 'unexpected-response'));
    assert.equal(response.statusCode, 400);
  });

  test('a polling body past maxPayload is 413 and ends the session; a bad one is 400', T, async () => {
    const open = await get(server, '');
    const sid = JSON.parse(open.body.slice(1)).sid;
    assert.equal(JSON.parse(open.body.slice(1)).maxPayload, MAX_PAYLOAD);
    assert.equal((await post(server, `&sid=${sid}`, '40')).status, 200);
    assert.equal((await post(server, `&sid=${sid}`, `42["x","${'y'.repeat(MAX_PAYLOAD)}"]`)).status, 413);
    await waitFor('the session to end', async () => (await get(server, `&sid=${sid}`)).status === 400);

    const second = JSON.parse((await get(server, '')).body.slice(1)).sid;
    assert.equal((await post(server, `&sid=${second}`, 'b!!!')).status, 400);
    await waitFor('the session to end', async () => (await get(server, `&sid=${second}`)).status === 400);
  });

  test('two GETs at once: the second is refused', T, async () => {
    const sid = JSON.parse((await get(server, '')).body.slice(1)).sid;
    await post(server, `&sid=${sid}`, '40');
    const connected = await get(server, `&sid=${sid}`);
    assert.match(connected.body, /^40\{"sid"/);
    const first = get(server, `&sid=${sid}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = await get(server, `&sid=${sid}`);
    assert.equal(second.status, 400);
    assert.equal((await first).status, 200);
  });

  test('a second WebSocket for a session already upgraded is refused; the first goes on', T, async () => {
    const sid = JSON.parse((await get(server, '')).body.slice(1)).sid;
    await post(server, `&sid=${sid}`, '40');
    assert.match((await get(server, `&sid=${sid}`)).body, /^40\{"sid"/);
    const first = new Raw(server, `&sid=${sid}`);
    await within(5000, 'the first upgrade to open', once(first.ws, 'open'));
    first.send('2probe');
    await first.expect((t) => t === '3probe');
    first.send('5');
    const second = new Raw(server, `&sid=${sid}`);
    await within(5000, 'the second upgrade to open', once(second.ws, 'open'));
    second.send('2probe');
    assert.match(await second.closedWith(1008), /being upgraded already/);
    first.send('421["users"]');
    await first.expect((t) => t.startsWith('431[[{'), 'the users ack over the upgraded WebSocket');
    first.ws.close();
  });

  test('after all that, the server still serves socket.io-client', T, async () => {
    const socket = io(server.base, { reconnection: false, forceNew: true });
    try {
      await within(5000, 'connect', once(socket, 'connect'));
      const users = await within(5000, 'users', socket.emitWithAck('users'));
      assert.ok(users.some((u) => u.id === socket.id));
    } finally {
      socket.close();
    }
    const health = await fetch(`${server.base}/healthz`);
    assert.equal(health.status, 200);
  });
});

describe('polling sessions that never CONNECT', () => {
  let server;

  before(async () => {
    ensureArtifacts();
    server = new Server(await freePort(), { logName: 'socketio-places', args: ['--max-handshakes-per-ip', '4'] });
    await server.start();
  });

  after(async () => {
    if (server) await server.stop('SIGKILL').catch(() => {});
  });

  test('hold a handshake place each until their CONNECT, so one address cannot hoard them', T, async () => {
    // Places held besides the /metrics request's own (an answered request
    // keeps its place while the server drains its connection, up to 0.5 s).
    const held = async () => {
      const text = await (await fetch(`${server.base}/metrics`)).text();
      return Number(text.match(/^switchboard_handshakes (\d+)$/m)[1]) - 1;
    };
    const sids = [];
    for (let i = 0; i < 3; i += 1) {
      await waitFor(`${i} places held`, async () => (await held()) === i);
      const opened = await get(server, '');
      assert.equal(opened.status, 200);
      sids.push(JSON.parse(opened.body.slice(1)).sid);
    }
    // Three sessions and this request's own connection: the fourth
    // session finds no place left for this address.
    await waitFor('3 places held', async () => (await held()) === 3);
    const refused = await get(server, '');
    assert.equal(refused.status, 503);
    assert.match(refused.body, /too many handshakes/);
    // A CONNECT gives the session's place back.
    assert.equal((await post(server, `&sid=${sids[0]}`, '40')).status, 200);
    await waitFor('a place again', async () => (await get(server, '')).status === 200);
  });
});
