// The page at / in a real browser (Debian's Chromium, driven by Playwright): asking, many
// passages, abstaining, errors in words, the API key, a phone screen, and an evaluation from
// upload to the table of wrong answers. Each state is kept as a screenshot in $SHOTS.
// Needs: BERTQA_BIN (the bertqa binary), BERTQA_SQUAD_DEV (dev-v1.1.json.gz); optional
// BERTQA_MODEL_DIR, BERTQA_SCREENSHOTS, CHROMIUM. Run by scripts/browser-test.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium } from 'playwright-core';

const SHOTS = process.env.BERTQA_SCREENSHOTS || 'target/browser';
const DEV = process.env.BERTQA_SQUAD_DEV;
const KEY = 'page-test-key';
const SB50 =
  'Super Bowl 50 was an American football game to determine the champion of the National Football ' +
  'League (NFL) for the 2015 season. The American Football Conference (AFC) champion Denver Broncos ' +
  'defeated the National Football Conference (NFC) champion Carolina Panthers 24–10 to earn their ' +
  'third Super Bowl title.';
const OTHER_A =
  'The Amazon rainforest covers much of the Amazon basin of South America, an area of seven million ' +
  'square kilometres, of which five and a half million are covered by the rainforest.';
const OTHER_B =
  'Oxygen is a chemical element with symbol O and atomic number 8. It is a member of the chalcogen ' +
  'group on the periodic table and is a highly reactive nonmetal.';

let browser;
let open;
let keyed;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts `bertqa serve` with `flags` and waits until it is ready. */
async function startServer(flags) {
  const port = await freePort();
  const args = ['serve', '--host', '127.0.0.1', '--port', String(port), ...flags];
  if (process.env.BERTQA_MODEL_DIR) args.push('--model-dir', process.env.BERTQA_MODEL_DIR);
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' };
  const child = spawn(process.env.BERTQA_BIN, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/ready`)).ok) return { url, child };
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`bertqa serve exited with ${child.exitCode}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.kill();
  throw new Error('bertqa serve was not ready in 120 s');
}

async function newPage(viewport = { width: 1200, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.problems = problems;
  return page;
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

/** Fills the passage list with `texts` (the page starts with one example passage). */
async function setPassages(page, texts) {
  while ((await page.locator('#passages textarea').count()) < texts.length) {
    await page.click('#add-passage');
  }
  const areas = page.locator('#passages textarea');
  for (let i = 0; i < texts.length; i++) await areas.nth(i).fill(texts[i]);
}

before(async () => {
  assert.ok(process.env.BERTQA_BIN, 'BERTQA_BIN names the bertqa binary');
  mkdirSync(SHOTS, { recursive: true });
  [open, keyed] = await Promise.all([startServer([]), startServer(['--api-key', KEY])]);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  for (const server of [open, keyed]) server?.child.kill('SIGTERM');
});

test('the README question, asked with the keyboard, lights up "Denver Broncos"', async () => {
  const page = await newPage();
  await page.goto(`${open.url}/`);
  await page.waitForFunction(() => !document.querySelector('#model-facts').textContent.startsWith('Loading'));
  assert.match(await page.textContent('#model-facts'), /SQuAD 2\.0/);
  await setPassages(page, [SB50]);
  await page.fill('#question', 'Which NFL team represented the AFC at Super Bowl 50?');
  await page.press('#question', 'Enter');
  const best = page.locator('.passages-shown mark.best');
  await best.waitFor();
  assert.equal(await best.textContent(), 'Denver Broncos');
  assert.equal(await page.textContent('.answer-text'), 'Denver Broncos');
  assert.match(await page.textContent('.answer-score'), /score \d+\.\d%/);
  assert.ok((await page.locator('.alternatives li').count()) >= 2, 'top-k alternatives listed');
  await shot(page, 'ask');
  assert.deepEqual(page.problems, []);
});

test('three passages with the answer in the second', async () => {
  const page = await newPage();
  await page.goto(`${open.url}/`);
  await setPassages(page, [OTHER_A, SB50, OTHER_B]);
  await page.fill('#question', 'Who won Super Bowl 50?');
  await page.click('#ask-button');
  await page.locator('.passages-shown mark.best').waitFor();
  assert.match(await page.textContent('.answer-score'), /from passage 2/);
  const second = page.locator('.passage-shown').nth(1);
  assert.match(await second.locator('mark.best').textContent(), /Denver Broncos/);
  assert.equal(await page.locator('.passage-shown').nth(0).locator('mark').count(), 0);
  // An alternative is shown in its own passage on click.
  await page.locator('.alternatives .alternative').nth(1).click();
  assert.equal(await page.locator('.passages-shown mark').count(), 1);
  await shot(page, 'ask-three-passages');
});

test('a question the passages cannot answer is shown as no answer', async () => {
  const page = await newPage();
  await page.goto(`${open.url}/`);
  await setPassages(page, [OTHER_B]);
  await page.fill('#question', 'Who won Super Bowl 50?');
  await page.fill('#min-score', '0.95');
  await page.click('#ask-button');
  await page.locator('.card.no-answer').waitFor();
  assert.match(await page.textContent('.card.no-answer'), /No answer/);
  assert.equal(await page.locator('.passages-shown mark').count(), 0);
  await shot(page, 'ask-no-answer');
});

test('an API error is shown in words', async () => {
  const page = await newPage();
  await page.goto(`${open.url}/`);
  await page.fill('#question', '   ');
  await page.click('#ask-button');
  const error = page.locator('#error');
  await error.waitFor();
  assert.match(await error.textContent(), /Error 422 \(validation\): question is empty or only white space/);
  await shot(page, 'ask-error');
});

test('with an API key set on the server, the page asks for it and then works', async () => {
  const page = await newPage();
  await page.goto(`${keyed.url}/`);
  await page.click('#ask-button');
  const error = page.locator('#error');
  await error.waitFor();
  assert.match(await error.textContent(), /Error 401 \(unauthorized\)/);
  assert.equal(await page.locator('#key-box').getAttribute('open'), '', 'the key box opens');
  await page.fill('#api-key', KEY);
  await page.dispatchEvent('#api-key', 'change');
  await page.click('#ask-button');
  await page.locator('.passages-shown mark.best').waitFor();
  assert.equal(await error.isHidden(), true, 'the error is cleared');
  await page.reload();
  assert.equal(await page.inputValue('#api-key'), KEY, 'the key is remembered');
});

test('readable on a phone: nothing wider than the screen', async () => {
  const page = await newPage({ width: 390, height: 844 });
  await page.goto(`${open.url}/`);
  await page.click('#ask-button');
  await page.locator('.passages-shown mark.best').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await shot(page, 'ask-phone');
});

test('an evaluation of 200 dev questions: upload, moving progress, scores, wrong answers', async () => {
  assert.ok(DEV, 'BERTQA_SQUAD_DEV names dev-v1.1.json.gz');
  const page = await newPage();
  await page.goto(`${open.url}/#evaluate`);
  await page.setInputFiles('#squad-file', DEV);
  await page.fill('#limit', '200');
  await page.click('#evaluate-button');
  // The bar is seen between empty and full: it moves while the job runs.
  await page.waitForFunction(() => {
    const bar = document.querySelector('#progress');
    return bar.max === 200 && bar.value > 0 && bar.value < 200;
  }, null, { polling: 20, timeout: 120_000 });
  assert.match(await page.textContent('#progress-text'), /\/ 200 questions · running · EM [\d.]+ · F1 [\d.]+/);
  await shot(page, 'evaluate-progress');
  await page.locator('#result').waitFor({ timeout: 300_000 });
  assert.match(await page.textContent('#progress-text'), /^200 \/ 200 questions · done/);
  const figures = await page.locator('#scores .value').allTextContents();
  const f1 = Number(figures[1]);
  assert.ok(f1 > 50 && f1 <= 100, `F1 ${f1}`);
  assert.ok((await page.locator('#chart-type .bar-row').count()) >= 4, 'question types charted');
  assert.ok((await page.locator('#chart-length .bar-row').count()) >= 3, 'answer lengths charted');
  const rows = page.locator('#wrong tbody tr');
  const wrong = await rows.count();
  assert.ok(wrong > 0 && wrong < 200, `${wrong} wrong`);
  await shot(page, 'evaluate-done');
  await shot(page, 'evaluate-summary', false);
  await rows.first().click();
  const dialog = page.locator('#detail');
  await dialog.waitFor();
  assert.ok((await dialog.locator('.passage mark.gold').count()) >= 1, 'gold span highlighted');
  await shot(page, 'evaluate-question');
  await page.click('#detail button');
  const first = await rows.first().locator('td').first().textContent();
  await page.fill('#search', first.slice(0, 12));
  assert.ok((await rows.count()) >= 1 && (await rows.count()) <= wrong, 'the search narrows the table');
  assert.deepEqual(page.problems, []);
});

test('a running evaluation can be cancelled from the page', async () => {
  const page = await newPage();
  await page.goto(`${open.url}/#evaluate`);
  await page.setInputFiles('#squad-file', DEV);
  await page.click('#evaluate-button');
  // The first chunk of dev (about 530 questions) must finish before progress moves: seconds on
  // a free core, longer on a slow or busy one, so this wait is not what the test measures.
  await page.waitForFunction(() => document.querySelector('#progress').value > 0, null, { polling: 20, timeout: 120000 });
  await page.click('#cancel-button');
  await page.waitForFunction(() => document.querySelector('#progress-text').textContent.endsWith('cancelled'));
  assert.equal(await page.locator('#error').isHidden(), true, 'a cancel is not an error');
  assert.equal(await page.locator('#result').isHidden(), true);
  assert.equal(await page.isEnabled('#evaluate-button'), true, 'a new evaluation can start');
  const jobs = await (await fetch(`${open.url}/evaluations`)).json();
  assert.ok(jobs.every((job) => job.state !== 'running'), JSON.stringify(jobs));
  await shot(page, 'evaluate-cancelled');
});
