// The console's part of issue 19: a scheduled message shows as scheduled with its send time, its Cancel button
// cancels it (refunded, status canceled), a message already sent has no such button, and prices and the balance
// are shown with the currency's decimals (EUR: 2), not the API's 8.
//
// Env: CONSOLE_URL, API_KEY, API_SECRET, SCHEDULED_ID, SENT_ID, CHROMIUM (optional).

import { env, newPage as open, session, signIn as login, until } from './browser.mjs';

const BASE = env('CONSOLE_URL');
const account = { key: env('API_KEY'), secret: env('API_SECRET') };
const SCHEDULED = env('SCHEDULED_ID');
const SENT = env('SENT_ID');

const { browser, problems, log, passed, failed } = await session();

try {
  const { page } = await open(browser, BASE, problems, { width: 1280, height: 800 });
  await login(page, BASE, account);

  log('the list shows the scheduled message as scheduled, priced in EUR with 2 decimals');
  const row = page.locator(`#message-rows tr[data-id="${SCHEDULED}"]`);
  await row.waitFor();
  if (!(await row.locator('.status-cell').innerText()).includes('scheduled')) throw new Error('not shown as scheduled');
  const price = (await row.locator('td[data-label="Price"]').innerText()).trim();
  if (price !== '0.07 EUR') throw new Error(`list price ${JSON.stringify(price)}`);

  log('the detail shows when it goes, and a Cancel button that cancels it');
  await row.getByRole('link').click();
  await page.getByRole('heading', { name: /Message to/ }).waitFor();
  const detail = await page.locator('main').innerText();
  for (const want of ['Send at', 'Priority', 'high', '0.07 EUR']) {
    if (!detail.includes(want)) throw new Error(`detail lacks ${JSON.stringify(want)}`);
  }
  if (detail.includes('0.07000000')) throw new Error('detail shows 8 decimals');
  await page.getByRole('button', { name: 'Cancel this message' }).click();
  await until('status canceled in the heading', async () =>
    (await page.getByRole('heading', { name: /Message to/ }).innerText()).includes('canceled'), 8000);
  if (await page.getByRole('button', { name: 'Cancel this message' }).count()) throw new Error('cancel button still shown');
  const timeline = await page.locator('.timeline').innerText();
  if (!timeline.includes('canceled') || !timeline.includes('refund')) throw new Error(`timeline: ${timeline}`);

  log('a message already submitted has no Cancel button');
  await page.goto(`${BASE}/console#/messages/${SENT}`);
  await page.getByRole('heading', { name: /Message to/ }).waitFor();
  await until('sent message final', async () => !(await page.locator('main').innerText()).includes('scheduled'));
  if (await page.getByRole('button', { name: 'Cancel this message' }).count()) throw new Error('cancel button on a sent message');

  log('the balance, refunded, in EUR with 2 decimals');
  await page.getByRole('link', { name: 'Account', exact: true }).click();
  const balance = (await page.locator('#balance').innerText({ timeout: 8000 })).trim();
  if (balance !== '999.93 EUR') throw new Error(`balance ${JSON.stringify(balance)}`);

  log('amounts are rounded as decimals, in each currency\'s own decimals');
  const shown = await page.evaluate(async () => {
    const { fmtMoney } = await import('/console/static/dom.js');
    return [fmtMoney('0.07250000', { code: 'BHD', decimals: 3 }), fmtMoney('1234.50000000', { code: 'JPY', decimals: 0 }),
      fmtMoney('0.00499999', { code: 'EUR', decimals: 2 }), fmtMoney('0.99500000', { code: 'EUR', decimals: 2 })];
  });
  const want = ['0.073 BHD', '1235 JPY', '0.00 EUR', '1.00 EUR'];
  if (JSON.stringify(shown) !== JSON.stringify(want)) throw new Error(`fmtMoney gave ${JSON.stringify(shown)}`);

  await passed('schedule check');
} catch (err) {
  await failed(err);
}
