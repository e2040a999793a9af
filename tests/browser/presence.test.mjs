// The chat page's presence features in headless Chromium, against
// `switchboard serve --global-userlist` (the command docs/SEEDS.md gives
// for the Socket.IO tutorial's chat exercise): the typing indicator on the other
// page (shown while typing, gone on send and after a few seconds), join and
// leave notices, the "Everyone online" panel listing users of other rooms
// (from the hub's own userlist, and from `users` on a server without it),
// and a sender's own message shown once, as its own.
//
//   node --test tests/browser/presence.test.mjs   (after cargo build --release --bin switchboard)

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Server, ensureArtifacts, freePort, launchBrowser, openPage, seedCommand, waitFor } from './harness.mjs';

let chrome;
const servers = [];

before(async () => {
  ensureArtifacts();
  chrome = await launchBrowser();
});

after(async () => {
  try {
    if (chrome) await chrome.close();
  } finally {
    for (const server of servers) await server.stop('SIGKILL').catch(() => {});
  }
});

async function startServer(args, logName) {
  const server = new Server(await freePort(), { logName, args });
  servers.push(server);
  await server.start();
  return server;
}

async function openChat(server, name, room) {
  const page = await openPage(chrome.browser);
  await page.goto(`${server.base}/?name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}`);
  await page.waitForSelector('#status[data-status="connected"]', { timeout: 10000 });
  await page.waitForSelector(`#room-list .nav-item.active[data-conv="room:${room}"]`);
  // Out of the default room, so that the two pages share none.
  await page.click('.nav-item[data-conv="room:lobby"]');
  await page.waitForSelector('.nav-item.active[data-conv="room:lobby"]');
  await page.click('#leave-btn');
  await page.waitForSelector(`#room-list .nav-item.active[data-conv="room:${room}"]`);
  assert.equal(await page.locator('#room-list [data-conv="room:lobby"]').count(), 0);
  return page;
}

async function everyone(page) {
  return page.$$eval('#all-users .uname', (els) => els.map((el) => el.textContent).sort());
}

async function waitForEveryone(page, expected, ms = 10000) {
  expected = [...expected].sort();
  await waitFor(`everyone online ${JSON.stringify(expected)}`, async () =>
    JSON.stringify(await everyone(page)) === JSON.stringify(expected), ms);
}

async function typing(page) {
  return page.textContent('#typing');
}

test('typing, notices, everyone online and no echo, on two pages', { timeout: 60000 }, async () => {
  // The command docs/SEEDS.md gives for the Socket.IO tutorial's chat.
  const server = await startServer(seedCommand('004'), 'presence-server');
  const ann = await openChat(server, 'ann', 'lounge');
  const ben = await openChat(server, 'ben', 'garden');

  // Different rooms, one hub: each page lists both.
  await waitForEveryone(ann, ['ann', 'ben']);
  await waitForEveryone(ben, ['ann', 'ben']);
  assert.equal(await ann.textContent('#all-count'), '2');

  // Ben comes to the lounge: Ann is told.
  await ben.fill('#join-input', 'lounge');
  await ben.press('#join-input', 'Enter');
  await ben.waitForSelector('#room-list .nav-item.active[data-conv="room:lounge"]');
  await ann.locator('#messages .system', { hasText: 'ben joined #lounge' }).waitFor({ timeout: 10000 });

  // Ben types: Ann sees it; Ben does not see himself typing.
  await ben.type('#message-input', 'hel');
  await waitFor('ann to see ben typing', async () => (await typing(ann)) === 'ben is typing…');
  assert.equal(await typing(ben), '');
  // Sending clears it at once, well before it would expire.
  await ben.type('#message-input', 'lo ann');
  await ben.press('#message-input', 'Enter');
  await ann.locator('#messages .msg .text', { hasText: 'hello ann' }).waitFor({ timeout: 10000 });
  await waitFor('the indicator to clear on send', async () => (await typing(ann)) === '', 1500);

  // Typing without sending: shown, then gone after a few seconds.
  await ben.type('#message-input', 'still thinking');
  await waitFor('ann to see ben typing again', async () => (await typing(ann)) === 'ben is typing…');
  const shownAt = Date.now();
  await waitFor('the indicator to expire', async () => (await typing(ann)) === '', 8000);
  assert.ok(Date.now() - shownAt >= 2500, 'shown for a few seconds');
  await ben.fill('#message-input', '');

  // Ann's own message: once on her page, as hers; once on Ben's, as Ann's.
  await ann.fill('#message-input', 'one copy only');
  await ann.press('#message-input', 'Enter');
  await ben.locator('#messages .msg .text', { hasText: 'one copy only' }).waitFor({ timeout: 10000 });
  await ann.locator('#messages .delivery', { hasText: 'Delivered to 1' }).waitFor({ timeout: 10000 });
  const annRows = ann.locator('#messages .msg', { hasText: 'one copy only' });
  assert.equal(await annRows.count(), 1);
  assert.equal(await annRows.locator('.author').textContent(), 'ann');
  assert.equal(await ann.locator('#messages .msg.own', { hasText: 'one copy only' }).count(), 1);
  const benRows = ben.locator('#messages .msg', { hasText: 'one copy only' });
  assert.equal(await benRows.count(), 1);
  assert.equal(await benRows.locator('.author').textContent(), 'ann');
  assert.equal(await ben.locator('#messages .msg.own', { hasText: 'one copy only' }).count(), 0);
  // No typing event ever shows up as an event card.
  assert.equal(await ann.locator('#messages .event-name', { hasText: 'typing' }).count(), 0);

  // Ben leaves the lounge, then the hub: Ann is told, and the panel follows.
  await ben.click('#leave-btn');
  await ann.locator('#messages .system', { hasText: 'ben left #lounge' }).waitFor({ timeout: 10000 });
  await ben.close();
  await waitForEveryone(ann, ['ann']);
  await ann.close();
});

test('without --global-userlist the panel asks the server with `users`', { timeout: 60000 }, async () => {
  const server = await startServer([], 'presence-plain-server');
  const cy = await openChat(server, 'cy', 'one');
  const di = await openChat(server, 'di', 'two');
  // Di asked when she connected; Cy's page asks again when a room of hers
  // changes, or after a while: join her room to make it change.
  await waitForEveryone(di, ['cy', 'di']);
  await di.fill('#join-input', 'one');
  await di.press('#join-input', 'Enter');
  await waitForEveryone(cy, ['cy', 'di']);
  await cy.close();
  await di.close();
});
