// The console's Send page (issue 19): a live segment/encoding counter from /v1/segments as the text is typed,
// a refusal that names and marks its field, a scheduled send with a priority (then canceled), and a send now that
// ends delivered.
//
// Env: CONSOLE_URL, API_KEY, API_SECRET, CHROMIUM (optional); SENDING=0 stops after the counter (a build without
// POST /v1/messages).

import { env, newPage as open, session, signIn as login, until } from './browser.mjs';

const BASE = env('CONSOLE_URL');
const account = { key: env('API_KEY'), secret: env('API_SECRET') };
const RUN = Date.now().toString(36);
const TO = `+3161${String(Date.now() % 1_000_000).padStart(6, '0')}7`;

const { browser, problems, log, passed, failed } = await session();

try {
  const { page } = await open(browser, BASE, problems, { width: 1280, height: 800 }, /status of (401|400)/);
  await login(page, BASE, account);
  const counter = page.locator('#compose-counter');
  const text = page.getByLabel('Text', { exact: true });

  log('the Send page counts parts and encoding as the text is typed');
  await page.getByRole('link', { name: 'Send', exact: true }).click();
  await page.getByRole('heading', { name: 'Send a message' }).waitFor();
  await text.fill('Hello world');
  await until('one GSM-7 part', async () => (await counter.innerText()).startsWith('GSM-7 · 1 part · 149 characters left'));
  await text.fill('x'.repeat(161));
  await until('two parts', async () => (await counter.innerText()).includes('2 parts'));
  await text.fill('Quotes ’like this’ cost more');
  await until('UCS-2 and the character named', async () => {
    const t = await counter.innerText();
    return t.startsWith('UCS-2') && t.includes('not in GSM-7: ’');
  });

  if (process.env.SENDING === '0') {
    await passed('compose counter check (sending not checked: no POST /v1/messages in this build)');
  }

  log('a bad number is refused, the field is named and marked');
  await page.getByLabel('To', { exact: true }).fill('12');
  await text.fill(`bad number ${RUN}`);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('#compose-error [role="alert"]').waitFor();
  if ((await page.getByLabel('To', { exact: true }).getAttribute('aria-invalid')) !== 'true') throw new Error('the To field is not marked');

  log('scheduled for an hour from now, high priority: the detail says so; then canceled');
  await page.getByLabel('To', { exact: true }).fill(TO);
  await text.fill(`later ${RUN}`);
  const local = await page.evaluate(() => {
    const d = new Date(Date.now() + 3600_000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  });
  await page.getByLabel('Send at (optional)', { exact: true }).fill(local);
  await page.getByLabel('Priority', { exact: true }).selectOption('high');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.getByRole('heading', { name: `Message to ${TO}` }).waitFor();
  const detail = await page.locator('main').innerText();
  for (const want of ['scheduled', 'Send at', 'high', `later ${RUN}`]) {
    if (!detail.includes(want)) throw new Error(`detail lacks ${JSON.stringify(want)}`);
  }
  await page.getByRole('button', { name: 'Cancel this message' }).click();
  await until('canceled', async () => (await page.getByRole('heading', { name: `Message to ${TO}` }).innerText()).includes('canceled'));

  log('sent now: it ends delivered');
  await page.getByRole('link', { name: 'Send', exact: true }).click();
  await page.getByLabel('To', { exact: true }).fill(TO);
  await text.fill(`now ${RUN}`);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.getByRole('heading', { name: `Message to ${TO}` }).waitFor();
  await until('delivered', async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    return (await page.getByRole('heading', { name: `Message to ${TO}` }).innerText()).includes('delivered');
  }, 10_000, 300);

  await passed('compose check');
} catch (err) {
  await failed(err);
}
