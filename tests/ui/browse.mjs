// Drives Debian's chromium through playwright-core against Sparta's /ui and
// prints what it saw as one JSON object. Usage:
//   node browse.mjs <sparta url> <artifact dir> <module to find> <hostile query>
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, outDir, wanted, hostileQuery] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'sparta-ui-profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const out = { dialogs: 0, consoleErrors: [] };
try {
  const page = await context.newPage();
  page.on('dialog', async (d) => { out.dialogs += 1; await d.dismiss(); });
  page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });

  await page.goto(`${url}/ui`);
  out.goproxy = (await page.textContent('#goproxy')).trim();

  await page.fill('#q', wanted);
  await Promise.all([page.waitForURL(/q=/), page.click('button[type=submit]')]);
  out.searchHits = await page.$$eval('a.module', (as) => as.map((a) => a.textContent));
  await page.screenshot({ path: join(outDir, 'ui-search.png'), fullPage: true });

  await Promise.all([page.waitForURL(/ui\/module/), page.click(`a.module:text-is("${wanted}")`)]);
  out.moduleTitle = (await page.textContent('#module')).trim();
  out.versions = await page.$$eval('td.version', (tds) => tds.map((t) => t.textContent));
  await page.screenshot({ path: join(outDir, 'ui-module.png'), fullPage: true });

  // Hostile names: they must show as text, and nothing they carry may run.
  await page.goto(`${url}/ui?q=${encodeURIComponent(hostileQuery)}`);
  out.hostileHits = await page.$$eval('a.module', (as) => as.map((a) => a.textContent));
  out.pwnedOnSearch = await page.evaluate(() => window.__pwned ?? null);
  out.imgsOnSearch = await page.$$eval('img', (x) => x.length);
  out.scriptsOnSearch = await page.$$eval('script', (x) => x.length);
  await page.screenshot({ path: join(outDir, 'ui-hostile.png'), fullPage: true });
  await Promise.all([page.waitForURL(/ui\/module/), page.locator('a.module').first().click()]);
  out.hostileTitle = (await page.textContent('#module')).trim();
  out.hostileVersions = await page.$$eval('td.version', (tds) => tds.map((t) => t.textContent));
  out.pwnedOnModule = await page.evaluate(() => window.__pwned ?? null);
  out.scriptsOnModule = await page.$$eval('script', (x) => x.length);
} finally {
  await context.close();
}
console.log(JSON.stringify(out));
