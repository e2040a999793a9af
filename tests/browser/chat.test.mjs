// The chat page (web/index.html) and the browser client (web/switchboard.js)
// in headless Chromium against a real `switchboard serve`.
//
//   node --test tests/browser/          (after cargo build --release --bin switchboard)
//
// Three isolated browser contexts (alice, bob, carol) use the page like people
// would: join a room, chat, rename, leave, send a direct message, receive
// what a backend POSTs to /api/publish, and ride out a server restart on the
// same port. Screenshots (desktop and a 375x812 phone) go to artifacts/browser/.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  ARTIFACTS,
  ROOT,
  Server,
  WEB_FROM_DISK,
  ensureArtifacts,
  freePort,
  launchBrowser,
  openPage,
  waitFor,
} from './harness.mjs';

// The steps build on each other (same pages, same server): after a failure
// the rest are skipped rather than failing in confusing ways.
let failed = null;
function step(name, fn, timeout = 30000) {
  test(name, { timeout }, async (t) => {
    if (failed) {
      t.skip(`after the failure of "${failed}"`);
      return;
    }
    try {
      await fn(t);
    } catch (error) {
      failed = name;
      throw error;
    }
  });
}

let server;
let chrome;
const pages = {};

before(async () => {
  ensureArtifacts();
  server = new Server(await freePort(), { logName: 'chat-server' });
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

// ── page helpers ─────────────────────────────────────────────────────────

async function openChat(name, viewport) {
  const page = await openPage(chrome.browser, { viewport });
  await page.goto(`${server.base}/?name=${encodeURIComponent(name)}`);
  await page.waitForSelector('#status[data-status="connected"]', { timeout: 10000 });
  assert.equal(await page.textContent('#me-name'), name);
  return page;
}

async function joinRoom(page, room) {
  await page.fill('#join-input', room);
  await page.press('#join-input', 'Enter');
  await page.waitForSelector(`#room-list .nav-item.active[data-conv="room:${room}"]`);
  await page.locator('#messages .system', { hasText: `You joined #${room}` }).waitFor();
}

async function openConversation(page, key) {
  await page.click(`.nav-item[data-conv="${key}"]`);
  await page.waitForSelector(`.nav-item.active[data-conv="${key}"]`);
}

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

/** Waits until a message with exactly this text is shown in the open conversation. */
async function seeMessage(page, text) {
  await page.locator('#messages .msg .text', { hasText: text }).first().waitFor({ timeout: 10000 });
}

async function userNames(page) {
  return page.$$eval('#user-list .uname', (els) => els.map((el) => el.textContent).sort());
}

async function waitForUsers(page, expected) {
  expected = [...expected].sort();
  await waitFor(`user list ${JSON.stringify(expected)}`, async () =>
    JSON.stringify(await userNames(page)) === JSON.stringify(expected), 10000);
}

/** Records every change of the status indicator (and every `end`) from now on. */
async function recordStatus(page) {
  await page.evaluate(() => {
    window.__statusLog = [];
    const el = document.getElementById('status');
    new MutationObserver(() => {
      const s = el.dataset.status;
      if (window.__statusLog[window.__statusLog.length - 1] !== s) window.__statusLog.push(s);
    }).observe(el, { attributes: true, attributeFilter: ['data-status'] });
    window.sb.on('end', () => window.__statusLog.push('end'));
  });
}

function statusLog(page) {
  return page.evaluate(() => window.__statusLog);
}

/** Page errors and console errors, except the browser's own reports of refused connections. */
function problems(page) {
  return page.problems.filter((p) => !/WebSocket connection to .* failed/.test(p) && !/ERR_CONNECTION_REFUSED/.test(p));
}

// ── tests ────────────────────────────────────────────────────────────────

step('the server serves the page and the client from web/', async () => {
  const page = await fetch(`${server.base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const client = await fetch(`${server.base}/switchboard.js`);
  assert.equal(client.status, 200);
  assert.match(client.headers.get('content-type'), /javascript/);
  const [html, js] = [await page.text(), await client.text()];
  if (!WEB_FROM_DISK) {
    const stale = 'the binary embeds an older web/; rebuild: cargo build --release --bin switchboard';
    assert.equal(html, fs.readFileSync(path.join(ROOT, 'web', 'index.html'), 'utf8'), stale);
    assert.equal(js, fs.readFileSync(path.join(ROOT, 'web', 'switchboard.js'), 'utf8'), stale);
  }
});

step('two pages join a room and chat; a third sees them arrive', async () => {
  pages.carol = await openChat('carol');
  await joinRoom(pages.carol, 'dev');
  await waitForUsers(pages.carol, ['carol']);

  pages.alice = await openChat('alice');
  pages.bob = await openChat('bob');
  // Everyone starts in the default room.
  for (const page of [pages.alice, pages.bob]) {
    assert.equal(await page.getAttribute('#room-list .nav-item:first-child', 'data-conv'), 'room:lobby');
  }
  await joinRoom(pages.alice, 'dev');
  await joinRoom(pages.bob, 'dev');
  await waitForUsers(pages.carol, ['alice', 'bob', 'carol']);
  await waitForUsers(pages.alice, ['alice', 'bob', 'carol']);
  await pages.carol.locator('#messages .system', { hasText: 'bob joined #dev' }).waitFor();

  await send(pages.alice, 'hello from alice <b>not bold</b>');
  await seeMessage(pages.bob, 'hello from alice <b>not bold</b>');
  await seeMessage(pages.carol, 'hello from alice <b>not bold</b>');
  // User text is text, never markup.
  assert.equal(await pages.bob.locator('#messages b').count(), 0);
  await pages.alice.locator('#messages .delivery', { hasText: 'Delivered to 2' }).waitFor();

  await send(pages.bob, 'hi alice, bob here');
  await seeMessage(pages.alice, 'hi alice, bob here');
  const author = await pages.alice.locator('#messages .msg', { hasText: 'hi alice, bob here' }).locator('.author').textContent();
  assert.equal(author, 'bob');
});

step('the third page sees the user list follow a rename and a leave', async () => {
  const { alice, carol } = pages;
  await alice.click('#rename-btn');
  await alice.fill('#rename-input', 'alicia');
  await alice.press('#rename-input', 'Enter');
  await waitForUsers(carol, ['alicia', 'bob', 'carol']);
  await carol.locator('#messages .system', { hasText: 'alice is now alicia' }).waitFor();
  await waitFor('the new name on alice\'s page', async () => (await alice.textContent('#me-name')) === 'alicia');

  await alice.click('#leave-btn');
  await waitForUsers(carol, ['bob', 'carol']);
  await carol.locator('#messages .system', { hasText: 'alicia left #dev' }).waitFor();
  assert.equal(await alice.locator('#room-list [data-conv="room:dev"]').count(), 0);

  await joinRoom(alice, 'dev');
  await waitForUsers(carol, ['alicia', 'bob', 'carol']);
});

step('a direct message reaches only its target', async () => {
  const { alice, bob, carol } = pages;
  await carol.evaluate(() => {
    window.__received = [];
    window.sb.on('*', (event, data, msg) => window.__received.push(JSON.stringify(msg)));
  });
  const secret = 'psst bob, the code is 7f3a';
  await alice.click('#user-list .person:not(.self) >> text=bob');
  await alice.waitForSelector('#dm-list .nav-item.active');
  assert.equal(await alice.textContent('#conv-title'), '@bob');
  await send(alice, secret);
  await alice.locator('#messages .delivery', { hasText: 'Delivered' }).waitFor();

  // bob gets an unread conversation with alicia and reads it.
  const item = bob.locator('#dm-list .nav-item', { hasText: 'alicia' });
  await item.waitFor();
  assert.equal(await item.locator('.badge').textContent(), '1');
  await item.click();
  await seeMessage(bob, secret);

  // carol neither shows it nor received it; a later room message proves she was listening.
  await openConversation(alice, 'room:dev');
  await send(alice, 'everyone: lunch?');
  await seeMessage(carol, 'everyone: lunch?');
  assert.ok(!(await carol.textContent('body')).includes(secret), 'carol\'s page shows the direct message');
  const received = await carol.evaluate(() => window.__received);
  assert.ok(received.some((m) => m.includes('everyone: lunch?')));
  assert.ok(!received.some((m) => m.includes(secret)), 'carol\'s client received the direct message');
});

step('messages POSTed to /api/publish show up as they arrive', async () => {
  const { alice, bob, carol } = pages;
  await openConversation(bob, 'room:dev');
  const chat = await server.publish({ room: 'dev', event: 'chat', data: { text: 'deploy finished (from the API)' } });
  assert.deepEqual(chat, { delivered: 3 });
  for (const page of [alice, bob, carol]) {
    await seeMessage(page, 'deploy finished (from the API)');
    const row = page.locator('#messages .msg', { hasText: 'deploy finished (from the API)' });
    assert.equal(await row.locator('.tag.server').textContent(), 'API');
  }

  // Any other event is shown with its name and data.
  await server.publish({ room: 'dev', event: 'deploy', data: { version: '1.4.2', ok: true } });
  const card = carol.locator('#messages .msg[data-kind="event"]', { hasText: 'deploy' });
  await card.waitFor();
  assert.match(await card.locator('.payload').textContent(), /"version": "1\.4\.2"/);

  // Address messages, once subscribed, land in the address feed.
  await alice.fill('#sub-input', '/sensors/**');
  await alice.press('#sub-input', 'Enter');
  await alice.waitForSelector('.nav-item.active[data-conv="feed"]');
  await alice.locator('#messages .system', { hasText: 'Subscribed to /sensors/**' }).waitFor();
  const address = await server.publish({ path: '/sensors/hall/motion', values: [1, 0.5, 'hall'] });
  assert.deepEqual(address, { delivered: 1 });
  const feed = alice.locator('#messages .msg[data-kind="address"]', { hasText: '/sensors/hall/motion' });
  await feed.waitFor();
  assert.deepEqual(await feed.locator('.value').allTextContents(), ['1', '0.5', '"hall"']);
  await openConversation(alice, 'room:dev');
});

step('after a server restart on the same port the pages reconnect and chat again', async () => {
  const { alice, bob, carol } = pages;
  for (const page of [alice, bob, carol]) await recordStatus(page);

  // SIGTERM: clients get `end` and a 1001 close; the server then drains and
  // exits. (It waits out the 10 s handshake timeout of any connection that has
  // not sent its request yet, hence the long bound.)
  const stopped = server.stop('SIGTERM', 15000);
  for (const page of [alice, bob, carol]) {
    await page.waitForSelector('#status[data-status="reconnecting"]', { timeout: 5000 });
  }
  // Typed while the server is away: kept and sent on reconnect.
  await send(bob, 'sent while the server was down');
  await bob.locator('#messages .delivery', { hasText: 'Waiting for the connection' }).waitFor();
  await stopped;

  await server.start();
  for (const page of [alice, bob, carol]) {
    await page.waitForSelector('#status[data-status="connected"]', { timeout: 20000 });
    const log = await statusLog(page);
    assert.equal(log[0], 'end', `the server said end first (${log})`);
    assert.ok(log.indexOf('reconnecting') > 0 && log.lastIndexOf('connected') > log.indexOf('reconnecting'),
      `status went reconnecting → connected: ${log}`);
  }

  // Rooms are rejoined and names re-applied on the new connections.
  await waitForUsers(carol, ['alicia', 'bob', 'carol']);
  // The buffered message went out once bob was back (whoever of the others
  // had rejoined by then received it).
  const offline = bob.locator('#messages .msg.own', { hasText: 'sent while the server was down' });
  await waitFor('the buffered message to be sent', async () => (await offline.getAttribute('data-state')) === 'sent');
  await send(alice, 'we are back');
  await seeMessage(bob, 'we are back');
  await seeMessage(carol, 'we are back');

  // bob answers alicia's direct message: her id changed, her name did not.
  await openConversation(bob, (await bob.getAttribute('#dm-list .nav-item', 'data-conv')));
  await send(bob, 'got it, thanks');
  await bob.locator('#messages .delivery', { hasText: 'Delivered' }).waitFor();
  const dm = alice.locator('#dm-list .nav-item', { hasText: 'bob' });
  await dm.click();
  await seeMessage(alice, 'got it, thanks');
  await openConversation(alice, 'room:dev');
  await openConversation(bob, 'room:dev');
}, 50000);

step('screenshots: desktop and a 375 px phone', async () => {
  const { alice, bob } = pages;
  const desktop = path.join(ARTIFACTS, 'chat-desktop.png');
  await alice.screenshot({ path: desktop });

  await bob.setViewportSize({ width: 375, height: 812 });
  await waitFor('the room list to be tucked away on a phone', async () =>
    (await bob.evaluate(() => document.getElementById('nav').getBoundingClientRect().right)) <= 0, 5000);
  const layout = await bob.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    composer: document.getElementById('message-input').getBoundingClientRect().width,
  }));
  assert.ok(layout.scrollWidth <= 375, `no sideways scrolling at 375 px (${layout.scrollWidth})`);
  assert.ok(layout.composer > 200, `the message box has room (${layout.composer} px)`);
  const phone = path.join(ARTIFACTS, 'chat-phone.png');
  await bob.screenshot({ path: phone });

  await bob.click('#open-nav');
  await waitFor('the room drawer to open', async () =>
    (await bob.evaluate(() => document.getElementById('nav').getBoundingClientRect().left)) >= 0, 5000);
  await bob.waitForTimeout(250); // let the slide-in finish for the picture
  await bob.screenshot({ path: path.join(ARTIFACTS, 'chat-phone-rooms.png') });
  await bob.click('#scrim', { position: { x: 360, y: 400 } });

  for (const file of [desktop, phone]) assert.ok(fs.statSync(file).size > 10000, `${file} was written`);
});

step('no script errors on any page', async () => {
  for (const [name, page] of Object.entries(pages)) {
    assert.deepEqual(problems(page), [], `${name}'s page`);
  }
});
