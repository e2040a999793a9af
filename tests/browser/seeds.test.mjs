// The seeds' own browser and Node code, copied unchanged from their documents
// (../shared/seeds/), against `switchboard serve` started with the command
// docs/SEEDS.md gives for each (read from that page):
//
// - 001 websockets-raw: its client usage on switchboard.js, with its
//   built-in event names `connection` and `reconnectionFail`;
// - 003 Espruino: its page (a WebSocket to /my_websocket asking for
//   "protocolOne") in headless Chromium, and the messages of its `ws`
//   module's join/broadcast ({join}, {room, msg}) from Node `ws` clients.
//
//   node --test tests/browser/seeds.test.mjs   (after cargo build --release --bin switchboard)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ROOT, Server, ensureArtifacts, freePort, launchBrowser, openPage, seedCommand, waitFor, within } from './harness.mjs';

const require = createRequire(new URL('../js/package.json', import.meta.url));
const WebSocket = require('ws');

const T = { timeout: 30000 };

// ---- 001 websockets-raw --------------------------------------------------------

// From the seed's README, "usage / client / browser", unchanged but for the
// server's address.
const SEED_001_CLIENT = `// assuming the server is listening on port 3000
ws = new wsClient('ws://localhost:3000');
ws.on('ready', () => app.status = 'connected') // built-in
	.on('initialData', data => { // custom
		app.userlist = data.userlist;
		app.messages = data.messages;
	});
// emit arbitrary events and pass some data
ws.emit('updateUser', {user: 'user'});`;

describe('001 websockets-raw', () => {
  let server;
  let chrome;

  before(async () => {
    ensureArtifacts();
    server = new Server(await freePort(), { logName: 'seed-001', args: seedCommand('001') });
    await server.start();
    chrome = await launchBrowser();
  });

  after(async () => {
    try {
      if (chrome) await chrome.close();
    } finally {
      if (server) await server.stop('SIGKILL').catch(() => {});
    }
  });

  test('its client code runs on switchboard.js; connection and reconnectionFail fire', T, async () => {
    const page = await openPage(chrome.browser);
    await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
    await page.goto(`${server.base}/healthz`);
    await page.addScriptTag({ url: '/switchboard.js' });
    // The one line docs/SEEDS.md asks for, then the seed's code, then
    // listeners on websockets-raw's other built-in event names.
    const code = SEED_001_CLIENT.replace('ws://localhost:3000', `ws://127.0.0.1:${server.port}`);
    assert.notEqual(code, SEED_001_CLIENT);
    await page.addScriptTag({
      content: `var app = {}; var seen = []; var wsClient = Switchboard;\n${code}\n` +
        "ws.on('connection', function () { seen.push(['connection', app.status || null]); })" +
        "  .on('ready', function () { seen.push(['ready']); })" +
        "  .on('reconnecting', function () { seen.push(['reconnecting']); })" +
        "  .on('reconnectionFail', function () { seen.push(['reconnectionFail', this.status]); });",
    });
    await page.waitForFunction(() => window.app.status === 'connected');
    // `connection` came before `ready` (app.status was not yet set).
    assert.deepEqual(await page.evaluate(() => window.seen), [['connection', null], ['ready']]);
    assert.equal(await page.evaluate(() => window.ws.url), `ws://127.0.0.1:${server.port}`);

    // The server side's initialData, sent to this connection.
    const id = await page.evaluate(() => window.ws.id);
    const data = { userlist: [{ id, name: null }], messages: ['hello'] };
    assert.deepEqual(await server.publish({ to: id, event: 'initialData', data }), { delivered: 1 });
    await page.waitForFunction(() => window.app.messages);
    assert.deepEqual(await page.evaluate(() => [window.app.userlist, window.app.messages]), [data.userlist, data.messages]);

    // The server goes away: three attempts, then reconnectionFail.
    await server.stop('SIGKILL');
    const seen = await waitFor('reconnectionFail', async () => {
      const seen = await page.evaluate(() => window.seen);
      return seen.some(([name]) => name === 'reconnectionFail') && seen;
    }, 15000);
    assert.deepEqual(seen.slice(2).map(([name]) => name), ['reconnecting', 'reconnecting', 'reconnecting', 'reconnectionFail']);
    assert.deepEqual(seen.at(-1), ['reconnectionFail', 'gone']);
    // Chromium reports each refused attempt on the console; nothing else.
    assert.deepEqual(page.problems.filter((p) => !p.includes('ERR_CONNECTION_REFUSED')), []);
    await page.context().close();
  });
});

// ---- 003 Espruino --------------------------------------------------------------

// From the seed's "WebSocket Server" section, unchanged: the page the
// Espruino server serves.
const SEED_003_PAGE = `var page = '<html><body><script>var ws;setTimeout(function(){';
page += 'ws = new WebSocket("ws://" + location.host + "/my_websocket", "protocolOne");';
page += 'ws.onmessage = function (event) { console.log("MSG:"+event.data); };';
page += 'setTimeout(function() { ws.send("Hello to Espruino!"); }, 1000);';
page += '},1000);</script></body></html>';`;

// What the Espruino ws module's join and broadcast send (its README:
// "must be used with the ws node.js server example provided").
const join = (room) => JSON.stringify({ join: room });
const broadcast = (msg, room) => JSON.stringify({ room, msg });

/** A Node `ws` client that collects the text messages it receives. */
async function nodeClient(url, protocols) {
  const ws = new WebSocket(url, protocols);
  ws.received = [];
  ws.on('message', (data) => ws.received.push(data.toString()));
  await within(5000, `${url} to open`, new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }));
  return ws;
}

async function nextMessage(ws, what) {
  return waitFor(what, () => ws.received.length > 0 && ws.received.shift(), 5000, 10);
}

describe('003 Espruino', () => {
  let server;
  let chrome;
  const clients = [];

  before(async () => {
    ensureArtifacts();
    server = new Server(await freePort(), { logName: 'seed-003', args: seedCommand('003') });
    await server.start();
    chrome = await launchBrowser();
  });

  after(async () => {
    for (const ws of clients) ws.terminate();
    try {
      if (chrome) await chrome.close();
    } finally {
      if (server) await server.stop('SIGKILL').catch(() => {});
    }
  });

  test('its page connects with protocolOne; Node ws clients join rooms and broadcast', T, async () => {
    const page = await openPage(chrome.browser);
    await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
    const logged = [];
    page.on('console', (message) => logged.push(message.text()));
    // The page as the seed builds it, opened at this server's origin.
    const html = new Function(`${SEED_003_PAGE}\nreturn page;`)();
    await page.goto(`${server.base}/healthz`);
    await page.setContent(html);
    await waitFor('the greeting on the page', () => logged.includes('MSG:User Joined'), 10000);
    assert.equal(await page.evaluate(() => window.ws.protocol), 'protocolOne');
    // "Hello to Espruino!" is not one of the protocol's messages: a clear
    // error comes back and the connection stays open.
    const error = await waitFor('the answer to Hello to Espruino!', () => logged.find((line) => line.includes('"error"')), 10000);
    const reply = JSON.parse(error.slice('MSG:'.length));
    assert.equal(reply.event, 'error');
    assert.equal(reply.data.code, 'invalid_json');
    assert.equal(await page.evaluate(() => window.ws.readyState), 1);

    // The Node server example's protocol, from Node `ws` clients.
    const url = `ws://127.0.0.1:${server.port}/my_websocket`;
    const a = await nodeClient(url);
    clients.push(a);
    assert.equal(a.protocol, '', 'no subprotocol offered, none answered');
    assert.equal(await nextMessage(a, 'a greeting'), 'User Joined');
    a.send(join('Espruino'));
    a.send(broadcast('a is here', 'Espruino'));
    assert.equal(await nextMessage(a, 'a\'s own room message'), 'a is here');
    const b = await nodeClient(url, 'protocolOne');
    clients.push(b);
    assert.equal(b.protocol, 'protocolOne');
    assert.equal(await nextMessage(b, 'b greeting'), 'User Joined');
    b.send(join('Espruino'));
    b.send(broadcast('hello world', 'Espruino'));
    assert.equal(await nextMessage(b, 'b\'s room message'), 'hello world');
    assert.equal(await nextMessage(a, 'b\'s room message at a'), 'hello world');
    // Room "all": every connection, the page included.
    a.send(broadcast('to everyone', 'all'));
    assert.equal(await nextMessage(a, 'all at a'), 'to everyone');
    assert.equal(await nextMessage(b, 'all at b'), 'to everyone');
    await waitFor('all on the page', () => logged.includes('MSG:to everyone'));
    // The page joined no room: it got none of the room's messages.
    assert.ok(!logged.includes('MSG:hello world'), logged.join('\n'));
    // {msg} alone is for the server's log; nothing comes back.
    a.send(JSON.stringify({ msg: 'for the server' }));
    a.send(join('other'));
    a.send(broadcast('still here', 'other'));
    assert.equal(await nextMessage(a, 'a after msg'), 'still here');
    assert.deepEqual(b.received, []);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});
