// The chat page and the browser client over https and wss, in headless
// Chromium against `switchboard serve --tls-cert/--tls-key` with a
// certificate made for the test. The browser context ignores certificate
// errors (Chromium does not know the test CA), but the connection is TLS:
// the server speaks nothing else on its port, and the page's response
// carries the TLS details and the test CA's name.
//
//   node --test tests/browser/tls.test.mjs   (after cargo build --release --bin switchboard)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { Server, ensureArtifacts, freePort, launchBrowser, makeCertificates, openPage } from './harness.mjs';

const CA_NAME = 'switchboard browser test CA';

let pki;
let server;
let chrome;

before(async () => {
  ensureArtifacts();
  pki = makeCertificates(CA_NAME);
  server = new Server(await freePort(), { logName: 'tls-server', tls: pki });
  await server.start();
  chrome = await launchBrowser();
});

after(async () => {
  try {
    if (chrome) await chrome.close();
  } finally {
    if (server) await server.stop('SIGKILL').catch(() => {});
    if (pki) fs.rmSync(pki.dir, { recursive: true, force: true });
  }
});

const T = { timeout: 30000 };

test('the chat page over https connects to wss:// and chats', T, async () => {
  const alice = await openPage(chrome.browser, { ignoreHTTPSErrors: true });
  const bob = await openPage(chrome.browser, { ignoreHTTPSErrors: true });
  await alice.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  await bob.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));

  const response = await alice.goto(`${server.base}/?name=alice`);
  assert.ok(server.base.startsWith('https://'));
  const security = await response.securityDetails();
  assert.ok(security, 'the page came over TLS');
  assert.match(security.protocol, /^TLS 1\.[23]$/);
  assert.equal(security.issuer, CA_NAME);
  await alice.waitForSelector('#status[data-status="connected"]', { timeout: 10000 });

  await bob.goto(`${server.base}/?name=bob`);
  await bob.waitForSelector('#status[data-status="connected"]', { timeout: 10000 });
  for (const page of [alice, bob]) {
    await page.fill('#join-input', 'secure');
    await page.press('#join-input', 'Enter');
  }
  await alice.waitForFunction(() => document.body.innerText.includes('bob'), null, { timeout: 10000 });
  await alice.fill('#message-input', 'hello over wss');
  await alice.press('#message-input', 'Enter');
  await bob.waitForFunction(() => document.body.innerText.includes('hello over wss'), null, { timeout: 10000 });

  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
  await alice.context().close();
  await bob.context().close();
});

test('the client script picks wss:// on an https page and round-trips an ack', T, async () => {
  const page = await openPage(chrome.browser, { ignoreHTTPSErrors: true });
  await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  await page.goto(`${server.base}/healthz`);
  await page.addScriptTag({ url: '/switchboard.js' });
  const result = await page.evaluate(async () => {
    const sb = new Switchboard({ name: 'carol' });
    const info = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('not connected within 5 s')), 5000);
      sb.once('ready', (data) => { clearTimeout(timer); resolve(data); });
    });
    const joined = await sb.join('vault');
    const delivered = await sb.emitWithAck('chat', { text: 'sealed' }, { room: 'vault' });
    const out = { url: sb.url, protocol: location.protocol, name: info.name, joined, delivered };
    sb.close();
    return out;
  });
  assert.equal(result.protocol, 'https:');
  assert.equal(result.url, `wss://127.0.0.1:${server.port}/ws`);
  assert.equal(result.name, 'carol');
  assert.deepEqual(result.joined, { room: 'vault', members: 1 });
  assert.deepEqual(result.delivered, { delivered: 1 });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
