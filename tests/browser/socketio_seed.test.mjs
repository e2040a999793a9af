// Seed 004 (the Socket.IO tutorial) in headless Chromium: its page's `io()`
// snippet, copied unchanged, loads socket.io-client's browser build from
// `serve` (/socket.io/socket.io.js) and connects to it with the default
// options (a polling handshake, then the upgrade to WebSocket). The
// tutorial's server side (`socket.emit('event:hello')` on connection,
// `gpio:21` answered with `true`) and its chat exercise run in the event
// proxy (socketio_backend.mjs), as docs/SOCKETIO.md maps them.
//
//   node --test tests/browser/socketio_seed.test.mjs   (after cargo build --release --bin switchboard)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Server, ensureArtifacts, freePort, launchBrowser, openPage, seedCommand, waitFor } from './harness.mjs';
import { Backend } from './socketio_backend.mjs';

const T = { timeout: 60000 };

// From the seed's "Client-side" section, unchanged.
const SEED_004_SNIPPET = `<script type="text/javascript">
var socket = io( );
socket.on( 'connect', function(){
  console.log('Socket has connected');
});
socket.on( 'event:hello', function(){
 console.log('Server says hello');
});
</script>`;

// The page: the client script from the server, the seed's snippet, then
// the exercise ("create a chat application using sockets") on the same
// socket, in the shape of Socket.IO's own chat example.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>seed 004</title></head>
<body>
<ul id="messages"></ul>
<form id="form"><input id="input" autocomplete="off"><button>Send</button></form>
<script src="/socket.io/socket.io.js"></script>
${SEED_004_SNIPPET}
<script>
var gpio = [];
socket.on('gpio:21', function (value) { gpio.push(value); });
var form = document.getElementById('form');
var input = document.getElementById('input');
form.addEventListener('submit', function (e) {
  e.preventDefault();
  if (input.value) { socket.emit('chat message', input.value); input.value = ''; }
});
socket.on('chat message', function (msg) {
  var item = document.createElement('li');
  item.textContent = msg;
  document.getElementById('messages').appendChild(item);
});
</script>
</body></html>`;

describe('004 Socket.IO tutorial', () => {
  let backend;
  let server;
  let chrome;

  before(async () => {
    ensureArtifacts();
    backend = await new Backend().start();
    // The page's command, plus the backend that holds the tutorial's handlers.
    const args = [...seedCommand('004'), '--event-proxy', `${backend.url}/event`];
    server = new Server(await freePort(), { logName: 'seed-004', args });
    await server.start();
    chrome = await launchBrowser();
  });

  after(async () => {
    try {
      if (chrome) await chrome.close();
    } finally {
      if (server) await server.stop('SIGKILL').catch(() => {});
      if (backend) await backend.stop();
    }
  });

  async function openSeedPage() {
    const page = await openPage(chrome.browser);
    page.logged = [];
    page.on('console', (message) => page.logged.push(message.text()));
    await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
    // The page lives on the server's origin, so that `io()` finds it.
    await page.goto(`${server.base}/healthz`);
    await page.setContent(PAGE, { waitUntil: 'load' });
    return page;
  }

  test('connect fires, event:hello arrives, gpio:21 is answered with true', T, async () => {
    const page = await openSeedPage();
    await waitFor('connect and event:hello', () =>
      page.logged.includes('Socket has connected') && page.logged.includes('Server says hello'));
    await page.evaluate(() => window.socket.emit('gpio:21'));
    await page.waitForFunction(() => window.gpio.length === 1);
    assert.deepEqual(await page.evaluate(() => window.gpio), [true]);
    // io() with its defaults: the polling handshake, then the upgrade.
    await page.waitForFunction(() => window.socket.io.engine.transport.name === 'websocket');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('the chat exercise: a message typed on one page shows on both', T, async () => {
    const alice = await openSeedPage();
    const bob = await openSeedPage();
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => window.socket.connected);
    }
    await alice.fill('#input', 'hello from alice');
    await alice.click('button');
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => document.querySelectorAll('#messages li').length === 1);
      assert.equal(await page.textContent('#messages li'), 'hello from alice');
    }
    await bob.fill('#input', 'hi alice');
    await bob.press('#input', 'Enter');
    await alice.waitForFunction(() => document.querySelectorAll('#messages li').length === 2);
    assert.equal(await alice.textContent('#messages li:nth-child(2)'), 'hi alice');
    assert.deepEqual([...alice.problems, ...bob.problems], []);
    await alice.context().close();
    await bob.context().close();
  });
});
