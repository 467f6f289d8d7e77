// The Batches section: a batch sent before the page opened shows with a progress bar that fills as its messages
// are delivered (refreshed in place), its counts per status, refused recipients and cost; then on a phone layout.
// Env: CONSOLE_URL, API_KEY, API_SECRET, BATCH_ID, SHOTS (screenshot dir), CHROMIUM (optional).

import { env, newPage, session, signIn, until } from './browser.mjs';

const BASE = env('CONSOLE_URL');
const BATCH = env('BATCH_ID');
const { browser, problems, log, passed, failed } = await session('sign in');
try {
  const { page } = await newPage(browser, BASE, problems, { width: 1280, height: 800 });
  await signIn(page, BASE, { key: env('API_KEY'), secret: env('API_SECRET') });
  log('open Batches from the navigation');
  await page.getByRole('link', { name: 'Batches', exact: true }).click();
  const row = page.locator(`#batch-rows tr[data-id="${BATCH}"]`);
  await row.waitFor();
  log('the progress bar fills to every message');
  await until('all done', async () => (await row.getAttribute('data-done')) === (await row.getAttribute('data-total')), 15_000);
  const total = await row.getAttribute('data-total');
  const text = await row.innerText();
  if (!text.includes(`${total} of ${total} done (100 %)`)) throw new Error(`progress text: ${text}`);
  if (!text.includes(`delivered ${total}`)) throw new Error(`status counts: ${text}`);
  const bar = row.locator('progress');
  if ((await bar.getAttribute('value')) !== total) throw new Error('the bar is not full');
  if (!(await bar.getAttribute('aria-label')).includes(`${total} of ${total} done`)) throw new Error('the bar has no label');
  await page.screenshot({ path: `${env('SHOTS')}/batches.png`, fullPage: true });
  log('phone layout');
  await page.setViewportSize({ width: 390, height: 844 });
  await row.waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 0) throw new Error(`the batches page scrolls sideways by ${overflow}px`);
  await page.screenshot({ path: `${env('SHOTS')}/batches-phone.png`, fullPage: true });
  await passed('batches check');
} catch (err) {
  await failed(err);
}
