// Shared by the console checks: launch Debian's chromium through playwright-core, open pages that may only
// talk to the gateway, sign in, and wait for conditions with a bound.

import { chromium } from 'playwright-core';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`missing env ${name}`);
  return v;
}

export async function until(what, fn, timeout = 10_000, every = 100) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(every);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright gives each launch a fresh, throw-away --user-data-dir of its own (it refuses one in args)
  });
}

// A page in a fresh context; page errors, console errors (except `tolerated`) and any request that leaves
// the gateway's origin are collected in `problems`: the console must work offline.
export async function newPage(browser, base, problems, viewport, tolerated = /status of 401/) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !tolerated.test(m.text())) problems.push(`console error: ${m.text()}`); });
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (!url.startsWith(base)) { problems.push(`request outside the gateway: ${url}`); return route.abort(); }
    return route.continue();
  });
  page.on('dialog', (d) => d.accept());
  return { context, page };
}

export async function signIn(page, base, creds) {
  await page.goto(`${base}/console`);
  if (creds.operator) {
    await page.getByLabel('the operator (sees all accounts)', { exact: true }).check();
    await page.getByLabel('Operator token', { exact: true }).fill(creds.operator);
  } else {
    await page.getByLabel('API key', { exact: true }).fill(creds.key);
    await page.getByLabel('API secret', { exact: true }).fill(creds.secret);
  }
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('#message-rows').waitFor({ state: 'attached' });
  await until('the live stream', async () => (await page.locator('#live').textContent()) === 'live updates on');
}

// One check's run: the browser, the problems its pages collect, `log` naming (and printing) the step under way
// (`step`: the first, not printed), and its two ends:
// `passed(name)` (fails instead when a problem was collected) and `failed(err)` naming the step; both close the
// browser and exit the process, 0 or 1.
export async function session(step = 'start') {
  const s = { browser: await launch(), problems: [], step };
  s.log = (what) => { s.step = what; console.log(`- ${what}`); };
  s.passed = async (name) => {
    if (s.problems.length) throw new Error(s.problems.join('\n'));
    console.log(`${name} passed`);
    await s.browser.close();
    process.exit(0);
  };
  s.failed = async (err) => {
    console.error(`FAILED at step "${s.step}": ${err.stack || err}`);
    if (s.problems.length) console.error(s.problems.join('\n'));
    await s.browser.close().catch(() => {});
    process.exit(1);
  };
  return s;
}
