// The live list across a gateway restart: the page stays open while pytest SIGKILLs and restarts the gateway
// and then sends a message; the stream reconnects from its last event id and the row appears, no reload.
//
// Protocol on stdio with test_console.py: this script prints "READY" once signed in and live; pytest answers
// with the id of a message it sent after the restart; the script exits 0 once that row shows "delivered".
// Env: CONSOLE_URL, API_KEY, API_SECRET, CHROMIUM (optional).

import readline from 'node:readline';
import { env, newPage, session, signIn, until } from './browser.mjs';

const BASE = env('CONSOLE_URL');
const { browser, problems, log, passed, failed } = await session('sign in');
try {
  // while the gateway is down the page's requests fail; that is the point of this check
  const { page } = await newPage(browser, BASE, problems, { width: 1280, height: 800 }, /status of 401|ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_INCOMPLETE_CHUNKED/);
  await signIn(page, BASE, { key: env('API_KEY'), secret: env('API_SECRET') });
  await page.evaluate(() => { window.__noReload = true; });
  const states = [];
  await page.exposeFunction('__state', (s) => states.push(s));
  await page.evaluate(() => new MutationObserver(() => window.__state(document.getElementById('live').textContent))
    .observe(document.getElementById('live'), { childList: true, characterData: true, subtree: true }));
  console.log('READY');
  const lines = readline.createInterface({ input: process.stdin });
  const messageId = (await lines[Symbol.asyncIterator]().next()).value.trim();
  log(`row ${messageId} appears after the restart`);
  const row = page.locator(`#message-rows tr[data-id="${messageId}"]`);
  await row.waitFor({ timeout: 15_000 });
  await until('delivered', async () => (await row.locator('.status-cell').innerText()).includes('delivered'), 10_000);
  if (!(await page.evaluate(() => window.__noReload))) throw new Error('the page reloaded');
  if (!states.some((s) => s.includes('reconnecting'))) throw new Error(`the stream never reconnected: ${states.join(', ')}`);
  await passed(`restart check (stream states: ${[...new Set(states)].join(', ')})`);
} catch (err) {
  await failed(err);
}
