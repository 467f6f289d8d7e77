// Drives the smsgate web console in headless Chromium (Debian's /usr/bin/chromium via playwright-core).
// Called by test_console.py with the gateway URL, an account, the operator token and a webhook receiver
// in the environment. Exits non-zero and prints the failing step when something is wrong.
//
// Env: CONSOLE_URL, API_KEY, API_SECRET, OPERATOR_TOKEN, RECEIVER_URL, ARTIFACTS, CHROMIUM (optional).

import fs from 'node:fs';
import path from 'node:path';
import { env, newPage as open, session, signIn as login, until } from './browser.mjs';

const BASE = env('CONSOLE_URL');
const RECEIVER = env('RECEIVER_URL');
const ARTIFACTS = env('ARTIFACTS');
const OPERATOR = env('OPERATOR_TOKEN');
const account = { key: env('API_KEY'), secret: env('API_SECRET') };
const RUN = Date.now().toString(36);
// ends in 9: never one of the sandbox's magic endings (…0001 to …0004)
const MSISDN = `+3161${String(Date.now() % 1_000_000).padStart(6, '0')}9`; // 061…: a valid mobile range at any time
const TEXT = `Console check ${RUN}`;
const REPLY = `Reply from handset ${RUN}`;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const basic = (k, s) => 'Basic ' + Buffer.from(`${k}:${s}`).toString('base64');
async function received() { return (await (await fetch(`${RECEIVER}/_log`)).json()).requests; }

const { browser, problems, log, passed, failed } = await session();
const newPage = (viewport) => open(browser, BASE, problems, viewport);
const signIn = (page, creds) => login(page, BASE, creds);

const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });

try {
  // -- desktop: sign in, live list, detail ------------------------------------------------------------------
  const { context: desk, page } = await newPage({ width: 1280, height: 800 });
  log('sign-in page renders with labelled fields');
  await page.goto(`${BASE}/console`);
  await page.getByLabel('API key', { exact: true }).waitFor();
  await shot(page, 'desktop-signin');

  log('wrong secret is refused with a message');
  await page.getByLabel('API key', { exact: true }).fill(account.key);
  await page.getByLabel('API secret', { exact: true }).fill('wrong');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor({ timeout: 5000 });

  log('sign in as the account');
  await signIn(page, account);
  await page.evaluate(() => { window.__noReload = true; });

  log('a message sent through the KPN API appears without a reload and turns delivered');
  const sent = await page.evaluate(async ({ key, secret, to, text }) => {
    const t = await fetch('/oauth/client_credential/accesstoken?grant_type=client_credentials', {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: key, client_secret: secret }),
    });
    const token = (await t.json()).access_token;
    const r = await fetch('/messaging/sms-kpn/v1/send', {
      method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ sender: 'ConsoleQA', messages: [{ mobile_number: to, content: text }] }),
    });
    return { status: r.status, body: await r.json() };
  }, { key: account.key, secret: account.secret, to: MSISDN, text: TEXT });
  if (sent.status !== 200) throw new Error(`KPN send failed: ${JSON.stringify(sent)}`);
  const messageId = sent.body.document_id;
  const row = page.locator(`#message-rows tr[data-id="${messageId}"]`);
  await row.waitFor({ timeout: 5000 });
  await until('status text "delivered" in the row', async () => (await row.locator('.status-cell').innerText()).includes('delivered'), 10_000);
  if (!(await page.evaluate(() => window.__noReload))) throw new Error('the page reloaded');
  await shot(page, 'desktop-messages');

  log('filters: status=failed hides it, number filter finds it');
  await page.getByLabel('Status', { exact: true }).selectOption('failed');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await until('row gone under status=failed', async () => (await row.count()) === 0);
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.getByLabel('Number (from or to)', { exact: true }).fill(MSISDN.slice(1));
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await until('row back under number filter', async () => (await page.locator('#message-rows tr').count()) === 1 && (await row.count()) === 1);

  log('detail view: parts, encoding, price, network, timeline and the failing receipt webhook');
  await row.getByRole('link').click();
  await page.getByRole('heading', { name: `Message to ${MSISDN}` }).waitFor();
  const detail = await page.locator('main').innerText();
  for (const want of ['gsm7', '0.07', 'accepted', 'submitted', 'delivered', 'Timeline', 'Parts', TEXT]) {
    if (!detail.includes(want)) throw new Error(`detail lacks ${JSON.stringify(want)}`);
  }
  await until('webhook attempt shown with HTTP 500', async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    return (await page.locator('.webhooks').innerText()).includes('HTTP 500');
  }, 10_000, 500);
  await shot(page, 'desktop-detail');

  log('handset conversation shows the SMS; a typed reply reaches the inbound webhook');
  await page.getByRole('link', { name: 'Handsets', exact: true }).click();
  await page.getByRole('link', { name: new RegExp(`\\${MSISDN}`) }).click();
  await page.locator('.bubble.received', { hasText: TEXT }).waitFor();
  if ((await page.getByLabel('To (who the handset answers)', { exact: true }).inputValue()) !== 'ConsoleQA') throw new Error('reply-to is not the sender');
  await page.getByLabel('Message', { exact: true }).fill(REPLY);
  await page.getByRole('button', { name: 'Send reply' }).click();
  await page.locator('.bubble.sent', { hasText: REPLY }).waitFor({ timeout: 5000 });
  const inbound = await until('inbound webhook at the receiver', async () =>
    (await received()).find((r) => r.path === '/inbound' && r.body.includes(REPLY)), 10_000, 200);
  if (!inbound.body.includes('message.received')) throw new Error(`unexpected inbound webhook ${inbound.body}`);
  await shot(page, 'desktop-handset');

  log('the reply is listed as an inbound message');
  await page.getByRole('link', { name: 'Messages', exact: true }).click();
  await page.locator('#message-rows tr', { hasText: REPLY }).first().waitFor();

  log('a failed webhook is replayed from the console');
  await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
  const failed = page.locator('.delivery', { hasText: '/receipts' }).filter({ hasText: 'message.delivered' }).first();
  await failed.waitFor();
  const deliveryId = await failed.getAttribute('data-id');
  const before = await (await fetch(`${BASE}/v1/webhooks/deliveries/${deliveryId}`, { headers: { Authorization: basic(account.key, account.secret) } })).json();
  if (before.status === 'delivered') throw new Error('the receipt webhook was not failing');
  await fetch(`${RECEIVER}/_heal`, { method: 'POST' });
  const clicked = Date.now() / 1000;
  await failed.getByRole('button', { name: 'Replay' }).click();
  const ok = await until('replayed webhook reaches the receiver', async () =>
    (await received()).find((r) => r.path === '/receipts' && r.status === 200 && r.body.includes(messageId) && r.body.includes('message.delivered')), 8000, 200);
  if (before.next_attempt_at && ok.at >= before.next_attempt_at) throw new Error('delivered by the automatic retry, not the replay');
  await until('delivery shown as delivered', async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    return (await page.locator(`.delivery[data-id="${deliveryId}"]`).getAttribute('data-status')) === 'delivered';
  }, 8000, 500);
  console.log(`  replayed ${((ok.at - clicked) * 1000).toFixed(0)} ms after the click`);
  await shot(page, 'desktop-webhooks');

  log('account: key, quota, balance and the per-minute chart');
  await page.getByRole('link', { name: 'Account', exact: true }).click();
  await page.locator('#rate-chart').waitFor();
  if ((await page.locator('#api-key-value').innerText()) !== account.key) throw new Error('api key not shown');
  const label = await page.locator('#rate-chart').getAttribute('aria-label');
  if (!/[1-9]\d* sent, [1-9]\d* received/.test(label)) throw new Error(`chart does not count this run: ${label}`);
  if ((await page.locator('#rate-chart rect').count()) < 2) throw new Error('no bars in the chart');
  await shot(page, 'desktop-account');

  log('account: suppress a number, see it listed, remove it');
  await page.getByLabel('Suppress a number (international form)').fill('+31 6 1234 0099');
  await page.getByRole('button', { name: 'Suppress', exact: true }).click();
  await page.locator('#suppressions tr[data-msisdn="31612340099"]').waitFor({ timeout: 5000 });
  const listed = await (await fetch(`${BASE}/v1/suppressions/31612340099`, { headers: { Authorization: basic(account.key, account.secret) } })).json();
  if (listed.source !== 'api' || listed.reason !== 'added in the console') throw new Error(`suppression: ${JSON.stringify(listed)}`);
  await page.getByRole('button', { name: 'Remove 31612340099' }).click();
  await page.locator('#suppressions-empty').waitFor({ timeout: 5000 });
  const gone = await fetch(`${BASE}/v1/suppressions/31612340099`, { headers: { Authorization: basic(account.key, account.secret) } });
  if (gone.status !== 404) throw new Error(`still suppressed after Remove: ${gone.status}`);

  log('rotate the secret: the old one stops working, the console keeps working');
  await page.getByRole('button', { name: 'Rotate secret…' }).click();
  const newSecret = (await page.locator('#new-secret').innerText({ timeout: 5000 })).trim();
  const old = await fetch(`${BASE}/v1/account`, { headers: { Authorization: basic(account.key, account.secret) } });
  const fresh = await fetch(`${BASE}/v1/account`, { headers: { Authorization: basic(account.key, newSecret) } });
  if (old.status !== 401 || fresh.status !== 200) throw new Error(`after rotation: old ${old.status}, new ${fresh.status}`);
  account.secret = newSecret;
  await page.reload();
  await page.locator('#rate-chart').waitFor();

  log('keyboard: the skip link is the first stop and has a focus style');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => ({ text: document.activeElement.textContent, outline: getComputedStyle(document.activeElement).outlineStyle }));
  if (focused.text !== 'Skip to content' || focused.outline === 'none') throw new Error(`first tab stop: ${JSON.stringify(focused)}`);
  await desk.close();

  // -- phone-sized window ---------------------------------------------------------------------------------
  const { context: phone, page: p2 } = await newPage({ width: 390, height: 844 });
  log('phone: messages list, conversation and account fit the width');
  await signIn(p2, account);
  await p2.locator(`#message-rows tr[data-id="${messageId}"]`).waitFor();
  const overflow = async () => p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if ((await overflow()) > 1) throw new Error(`messages page scrolls sideways by ${await overflow()}px`);
  await shot(p2, 'phone-messages');
  await p2.goto(`${BASE}/console#/handsets/${MSISDN.slice(1)}`);
  await p2.locator('.bubble.sent', { hasText: REPLY }).waitFor();
  if ((await overflow()) > 1) throw new Error('handset page scrolls sideways');
  await shot(p2, 'phone-handset');
  await p2.goto(`${BASE}/console#/messages/${messageId}`);
  await p2.getByRole('heading', { name: `Message to ${MSISDN}` }).waitFor();
  await shot(p2, 'phone-detail');
  await p2.goto(`${BASE}/console#/account`);
  await p2.locator('#rate-chart').waitFor();
  if ((await overflow()) > 1) throw new Error('account page scrolls sideways');
  await shot(p2, 'phone-account');
  await phone.close();

  // -- operator ---------------------------------------------------------------------------------------------
  log('operator token sees all accounts, with an account column');
  const { context: op, page: p3 } = await newPage({ width: 1280, height: 800 });
  await signIn(p3, { operator: OPERATOR });
  await p3.locator(`#message-rows tr[data-id="${messageId}"]`).waitFor();
  if (!(await p3.locator('thead').innerText()).includes('Account')) throw new Error('no account column for the operator');
  await shot(p3, 'desktop-operator');
  await op.close();

  await passed('console check');
} catch (err) {
  await failed(err);
}
