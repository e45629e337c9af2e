// Browser test of the /admin/ dashboard: headless Chromium driven by
// playwright-core, against a real sidecar and Redis started by
// e2e/dashboard_test.go (TestDashboard_in_a_browser), which passes:
//   DASHBOARD_URL    the dashboard URL with ?token=…
//   CHROMIUM         the browser binary (default /usr/bin/chromium)
//   ARTIFACTS        a directory for screenshots
//   DOCS_SCREENSHOT  where to copy the screenshot for docs/dashboard.md (optional)
// The sidecar holds one dead letter of type order.failed. The test checks the
// page loads with no console errors, drops the token from the URL, shows the
// dead letter and its detail, retries it from the button, and sees the DLQ
// count drop to 0. Exit status 0 = pass.
import { chromium } from 'playwright-core';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const url = process.env.DASHBOARD_URL;
const artifacts = process.env.ARTIFACTS || 'artifacts';
if (!url) {
  console.error('DASHBOARD_URL is not set: run this from go test -run TestDashboard_in_a_browser ./e2e');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const problems = [];
let page;
// textIs waits until the element's whole text is want.
const textIs = (sel, want) => page.locator(sel).filter({ hasText: new RegExp('^' + want + '$') }).waitFor();
function check(cond, what) {
  if (!cond) problems.push(what);
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('uncaught: ' + e.message));
  page.on('dialog', (d) => d.accept());

  await page.goto(url);
  await page.waitForSelector('#main:not([hidden])');
  check(!page.url().includes('token='), 'the token is removed from the address bar (got ' + page.url().replace(/token=[^&]*/, 'token=…') + ')');
  const stored = await page.evaluate(() => sessionStorage.getItem('hyvve-admin-token'));
  check(stored !== null && stored.length > 0, 'the token is kept in sessionStorage');

  const row = page.locator('#dlq tbody tr', { hasText: 'order.failed' });
  await row.waitFor();
  check(await row.count() === 1, 'the dead letter of type order.failed is listed');
  // Locator waits, not waitForFunction: the page's CSP forbids eval, which
  // polling a function needs.
  await textIs('#dlq-count', '1');
  check(true, 'the DLQ count shows 1');
  await textIs('#t-tenants', '1');
  check(await page.locator('#groups tbody').innerText().then((t) => t.includes('acme')), 'the groups table shows tenant acme');

  await row.getByRole('button', { name: 'View' }).click();
  await page.waitForSelector('#detail:not([hidden])');
  const detail = await page.locator('#detail').innerText();
  check(detail.includes('ord-browser-42'), 'the detail view shows the event data');
  check(detail.includes('422'), 'the detail view shows the last error');
  // Let the 5 s stats refresh run once so the chart has been redrawn.
  await page.waitForTimeout(5500);
  const shot = join(artifacts, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  if (process.env.DOCS_SCREENSHOT) copyFileSync(shot, process.env.DOCS_SCREENSHOT);

  await row.getByRole('button', { name: 'Retry' }).click();
  await textIs('#dlq-count', '0');
  check(true, 'after Retry the DLQ count drops to 0');
  check(await page.locator('#dlq tbody tr', { hasText: 'order.failed' }).count() === 0, 'the dead letter left the table');
  check(await page.locator('#detail').isHidden(), 'the detail view closed');
  check(await page.locator('#banner').isHidden(), 'no error banner' + (await page.locator('#banner').isHidden() ? '' : ': ' + await page.locator('#banner-text').innerText()));
  await page.screenshot({ path: join(artifacts, 'dashboard-after-retry.png'), fullPage: true });

  check(consoleErrors.length === 0, 'no console errors' + (consoleErrors.length ? ': ' + consoleErrors.join(' | ') : ''));
} catch (e) {
  problems.push(String(e && e.stack || e));
  console.error(e);
  if (page) await page.screenshot({ path: join(artifacts, 'dashboard-failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.length + ' problem(s):\n' + problems.join('\n'));
  process.exit(1);
}
console.log('dashboard browser test passed');
