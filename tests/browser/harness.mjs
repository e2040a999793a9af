// Shared pieces of the browser tests: a `switchboard serve` child process on a
// free loopback port, headless Chromium through playwright-core, and bounded
// waits. Not a test file itself (node --test picks up *.test.mjs only).
//
// Environment:
//   SWITCHBOARD_BIN            the binary (default target/release/switchboard)
//   CHROMIUM                   the browser (default /usr/bin/chromium)
//   SWITCHBOARD_WEB_FROM_DISK  1: answer / and /switchboard.js from web/ on
//                              disk instead of from the binary, to work on the
//                              page without rebuilding (everything else still
//                              goes to the real server)

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from '../js/node_modules/playwright-core/index.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.SWITCHBOARD_BIN || path.join(ROOT, 'target', 'release', 'switchboard');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'artifacts', 'browser');
export const WEB_FROM_DISK = process.env.SWITCHBOARD_WEB_FROM_DISK === '1';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `what` if `promise` takes longer than `ms`. */
export async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns a truthy value; throws after `ms`. */
export async function waitFor(what, check, ms = 10000, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(every);
  }
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * A throwaway CA and a server certificate it signs for localhost and
 * 127.0.0.1, made by tests/e2e/certs.py with the venv's Python (Node has no
 * certificate builder). Returns the paths { ca, cert, key }.
 */
export function makeCertificates(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-pki-'));
  const python = path.join(ROOT, '.venv', 'bin', 'python');
  const out = execFileSync(python, [path.join(ROOT, 'tests', 'e2e', 'certs.py'), dir, name], { encoding: 'utf8' });
  return { dir, ...JSON.parse(out) };
}

/**
 * `switchboard serve` on 127.0.0.1:PORT; can be stopped and started again.
 * With `tls: { cert, key }` it serves https and wss only.
 */
export class Server {
  constructor(port, { logName = 'server', args = [], tls = null } = {}) {
    this.port = port;
    this.tls = tls;
    this.args = tls ? [...args, '--tls-cert', tls.cert, '--tls-key', tls.key] : args;
    this.logName = logName;
    this.starts = 0;
    this.child = null;
    this.log = '';
  }

  get base() {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!fs.existsSync(BIN)) {
      throw new Error(`${BIN} is missing: run cargo build --release --bin switchboard`);
    }
    this.starts += 1;
    const child = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', String(this.port), ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SWITCHBOARD_LOG: process.env.SWITCHBOARD_LOG || 'warn' },
    });
    this.child = child;
    this.exited = once(child, 'exit');
    const logPath = path.join(ARTIFACTS, `${this.logName}-${this.starts}.log`);
    const logFile = fs.createWriteStream(logPath);
    const record = (chunk) => {
      this.log += chunk;
      logFile.write(chunk);
    };
    child.stdout.on('data', record);
    child.stderr.on('data', record);
    child.on('exit', () => logFile.end());
    await waitFor(`the server on port ${this.port} to answer /healthz (log: ${logPath})`, async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the server exited (${child.exitCode ?? child.signalCode}):\n${this.log}`);
      }
      // Node's fetch cannot be told about the test CA; the line the server
      // prints once it listens will do.
      if (this.tls) return this.log.includes(`listening on https://127.0.0.1:${this.port}`);
      const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    }, 10000, 50);
  }

  /** Stops the server with `signal` (by PID), waiting at most `ms` before SIGKILL. */
  async stop(signal = 'SIGTERM', ms = 5000) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    try {
      await within(ms, `the server to exit after ${signal}`, this.exited);
    } catch (error) {
      child.kill('SIGKILL');
      await within(5000, 'the server to exit after SIGKILL', this.exited);
      throw error;
    } finally {
      this.child = null;
    }
  }

  async publish(body) {
    const res = await fetch(`${this.base}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST /api/publish answered ${res.status}: ${text}`);
    return JSON.parse(text);
  }
}

/**
 * Headless Chromium. Playwright refuses --user-data-dir for launch() (it
 * makes a fresh profile itself, under os.tmpdir()), so TMPDIR points at a
 * private temporary directory for the launch, and close() removes it.
 */
export async function launchBrowser() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-browser-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  let browser;
  try {
    browser = await within(30000, 'chromium to start', chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Chromium treats answers made up by page.route as coming from a public
      // address, and would then block the page's WebSocket to 127.0.0.1.
      args: WEB_FROM_DISK ? [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks'] : CHROMIUM_ARGS,
      timeout: 30000,
    }));
  } catch (error) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw error;
  } finally {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  }
  return {
    browser,
    async close() {
      try {
        await within(10000, 'chromium to close', browser.close());
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    },
  };
}

/**
 * A new isolated browser context (own storage) with one page; console errors
 * and page errors are collected in page.problems. `ignoreHTTPSErrors` lets
 * the page trust a test CA's certificate (the connection is still TLS).
 */
export async function openPage(browser, { viewport = { width: 1280, height: 800 }, ignoreHTTPSErrors = false } = {}) {
  const context = await browser.newContext({ viewport, ignoreHTTPSErrors });
  context.setDefaultTimeout(10000);
  if (WEB_FROM_DISK) {
    await context.route(/^http:\/\/127\.0\.0\.1:\d+\/(\?.*)?$/, (route) =>
      route.fulfill({ contentType: 'text/html; charset=utf-8', body: fs.readFileSync(path.join(ROOT, 'web', 'index.html')) }));
    await context.route(/^http:\/\/127\.0\.0\.1:\d+\/switchboard\.js$/, (route) =>
      route.fulfill({ contentType: 'text/javascript; charset=utf-8', body: fs.readFileSync(path.join(ROOT, 'web', 'switchboard.js')) }));
  }
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') page.problems.push(`console: ${message.text()}`);
  });
  return page;
}

/**
 * Opens a page of `server`'s origin with the browser client loaded
 * (/switchboard.js; the server has no /favicon.ico, which Chromium asks
 * for) and the tests' helpers in it: `until(check, ms)` resolves with
 * `check()`'s first truthy value, `failure(promise)` with `{resolved}` or
 * the error's `{code, message, name}`.
 */
export async function openClientPage(browser, server) {
  const page = await openPage(browser);
  await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  await page.goto(`${server.base}/healthz`);
  await page.addScriptTag({ url: '/switchboard.js' });
  await page.evaluate(() => {
    window.until = (check, ms = 5000) => new Promise((resolve, reject) => {
      const deadline = Date.now() + ms;
      (function poll() {
        const value = check();
        if (value) return resolve(value);
        if (Date.now() > deadline) return reject(new Error(`timed out: ${check}`));
        setTimeout(poll, 20);
      })();
    });
    window.failure = (promise) => promise.then(
      (value) => ({ resolved: value }),
      (error) => ({ code: error.code, message: error.message, name: error.name }));
  });
  return page;
}

export function ensureArtifacts() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
}

/** The `serve` flags docs/SEEDS.md gives for a seed (after its marker). */
export function seedCommand(seed) {
  const text = fs.readFileSync(path.join(ROOT, 'docs', 'SEEDS.md'), 'utf8');
  const found = text.match(new RegExp(`<!-- seed-command: ${seed} -->\\s*\`\`\`sh\\n(.+?)\\n\`\`\``));
  if (!found) throw new Error(`docs/SEEDS.md has no command for seed ${seed}`);
  // Words, with '…' quoting (all the page uses).
  const words = [...found[1].matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
  if (words[0] !== 'switchboard' || words[1] !== 'serve') throw new Error(`not a serve command: ${found[1]}`);
  return words.slice(2);
}
