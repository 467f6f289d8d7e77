// Swagger UI at /docs in headless Chromium with every request outside the gateway refused: the page must
// render the whole API from the gateway's own assets (a self-hosted gateway is often offline).
import { env, launch, newPage, until } from './browser.mjs';

const base = env('DOCS_URL');
const problems = [];
const browser = await launch();
try {
  const { page } = await newPage(browser, base, problems, { width: 1280, height: 900 });
  const assets = [];
  page.on('response', (r) => { if (r.url().includes('/docs/assets/')) assets.push(`${r.status()} ${r.url()}`); });
  await page.goto(`${base}/docs`);
  await until('the API title', async () => (await page.locator('.swagger-ui .info .title').textContent())?.includes('smsgate'), 15_000);
  const operations = await page.locator('.swagger-ui .opblock').count();
  if (operations < 10) problems.push(`only ${operations} operations rendered`);
  if (!(await page.getByRole('button', { name: /Authorize/ }).count())) problems.push('no Authorize button');
  if (assets.length < 2 || assets.some((a) => !a.startsWith('200 '))) problems.push(`assets: ${assets.join(', ')}`);
  if (process.env.ARTIFACTS) await page.screenshot({ path: `${process.env.ARTIFACTS}/docs.png` });
  console.log(`operations ${operations}; assets ${assets.length}`);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
