// Opens the live-values page (/demo) in headless Chromium and watches one
// address; test_bridges.py feeds it over OSC.
//
//   node tests/e2e/demo_page.mjs URL PATH SCREENSHOT
//
// Prints "READY" once the page is connected and its subscription confirmed,
// then "OK <values>" once the row of PATH has shown three different numbers
// (and saves a screenshot); exits 1 on a timeout or a page error.

import { chromium } from '../js/node_modules/playwright-core/index.mjs';

const [url, path, screenshot] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const timer = setTimeout(() => {
  console.log('TIMEOUT');
  process.exit(1);
}, 30000);

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
let status = 1;
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 360 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  await page.goto(url);
  await page.waitForSelector('#status[data-status="connected"]', { timeout: 10000 });
  await page.waitForSelector('body[data-subscribed]', { timeout: 10000 });
  console.log('READY');
  const row = `.row[data-path="${path}"]`;
  await page.waitForSelector(row, { timeout: 10000 });
  const seen = new Set();
  const deadline = Date.now() + 10000;
  while (seen.size < 3 && Date.now() < deadline) {
    const text = await page.$eval(`${row} .values`, (el) => el.textContent);
    if (/^-?\d/.test(text)) seen.add(text);
    await page.waitForTimeout(50);
  }
  const width = await page.$eval(`${row} .bar > div`, (bar) => bar.style.width);
  await page.screenshot({ path: screenshot });
  if (problems.length) {
    console.log(`PROBLEMS ${JSON.stringify(problems)}`);
  } else if (seen.size < 3 || !/%$/.test(width)) {
    console.log(`STUCK ${JSON.stringify([...seen])} ${width}`);
  } else {
    console.log(`OK ${JSON.stringify([...seen])} bar ${width}`);
    status = 0;
  }
} catch (error) {
  console.log(`FAILED ${error.message}`);
} finally {
  await browser.close();
  clearTimeout(timer);
}
process.exit(status);
