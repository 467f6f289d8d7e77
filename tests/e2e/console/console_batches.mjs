// The Batches section: a batch sent before the page opened shows with a progress bar that fills as its messages
// are delivered (refreshed in place), its counts per status, refused recipients and cost; then on a phone layout.
// Env: CONSOLE_URL, API_KEY, API_SECRET, BATCH_ID, SHOTS (screenshot dir), CHROMIUM (optional).

import { env, launch, newPage, signIn, until } from './browser.mjs';

const BASE = env('CONSOLE_URL');
const BATCH = env('BATCH_ID');
const problems = [];
const browser = await launch();
let step = 'sign in';
try {
  const { page } = await newPage(browser, BASE, problems, { width: 1280, height: 800 });
  await signIn(page, BASE, { key: env('API_KEY'), secret: env('API_SECRET') });
  step = 'open Batches from the navigation';
  await page.getByRole('link', { name: 'Batches', exact: true }).click();
  const row = page.locator(`#batch-rows tr[data-id="${BATCH}"]`);
  await row.waitFor();
  step = 'the progress bar fills to every message';
  await until('all done', async () => (await row.getAttribute('data-done')) === (await row.getAttribute('data-total')), 15_000);
  const total = await row.getAttribute('data-total');
  const text = await row.innerText();
  if (!text.includes(`${total} of ${total} done (100 %)`)) throw new Error(`progress text: ${text}`);
  if (!text.includes(`delivered ${total}`)) throw new Error(`status counts: ${text}`);
  const bar = row.locator('progress');
  if ((await bar.getAttribute('value')) !== total) throw new Error('the bar is not full');
  if (!(await bar.getAttribute('aria-label')).includes(`${total} of ${total} done`)) throw new Error('the bar has no label');
  await page.screenshot({ path: `${env('SHOTS')}/batches.png`, fullPage: true });
  step = 'phone layout';
  await page.setViewportSize({ width: 390, height: 844 });
  await row.waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 0) throw new Error(`the batches page scrolls sideways by ${overflow}px`);
  await page.screenshot({ path: `${env('SHOTS')}/batches-phone.png`, fullPage: true });
  if (problems.length) throw new Error(problems.join('\n'));
  console.log('batches check passed');
  await browser.close();
  process.exit(0);
} catch (err) {
  console.error(`FAILED at step "${step}": ${err.stack || err}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
