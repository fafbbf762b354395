// `npm run console:screenshots`, with `npm run dev` running: draws docs/console-*.png from the
// console as people use it (alice asks, carol reviews, sam audits), in Chromium.
import path from 'node:path';
import type { Page } from 'playwright-core';
import { launchChromium, PHONE, signedIn } from '../test/support/browser';
import { repoRoot } from './stack';

const API = process.env.ACCESS_URL ?? 'http://127.0.0.1:8080';
const TENANT = process.env.ACCESS_TENANT_ID ?? '2489e9ad-2ee2-8e00-8ec9-32d5f69181c0';
const ACCOUNT = '123456789012';

async function shot(page: Page, name: string): Promise<void> {
  const file = path.join(repoRoot, 'docs', `console-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`wrote ${path.relative(repoRoot, file)}`);
}

async function main(): Promise<void> {
  const consoleUrl = `${API}/t/${TENANT}/`;
  const browser = await launchChromium();
  try {
    const alice = (await signedIn(browser, consoleUrl, 'alice')).page;
    // The API learns the permission sets from the first reconciliation round: a fresh stack may take a few seconds.
    const pair = alice.locator(`input[name=pair][value="${ACCOUNT}|AdministratorAccess"]`);
    for (let tries = 0; ; tries++) {
      await alice.goto(`${consoleUrl}request?${new URLSearchParams({ role: 'AdministratorAccess' })}`);
      if ((await pair.count()) > 0 || tries === 30) break;
      await alice.waitForTimeout(2000);
    }
    await pair.check();
    await alice.getByLabel('Reason').fill('rotate the deploy keys, CHG-1024');
    await alice.getByLabel(/Ticket/).fill('CHG-1024');
    await alice.getByLabel(/Duration in minutes/).fill('45');
    await alice.getByRole('button', { name: 'Preview' }).click();
    await shot(alice, 'request');
    await alice.getByRole('button', { name: 'Send' }).click();
    await alice.waitForURL(/\/access\?/);

    const carol = (await signedIn(browser, consoleUrl, 'carol')).page;
    await carol.goto(`${consoleUrl}review`);
    await carol.locator('article.request', { hasText: 'CHG-1024' }).first().waitFor();
    await shot(carol, 'review');
    const phone = (await signedIn(browser, consoleUrl, 'carol', PHONE)).page;
    await phone.goto(`${consoleUrl}review`);
    await shot(phone, 'review-phone');
    await carol.locator('article.request', { hasText: 'CHG-1024' }).first().getByRole('button', { name: 'Approve' }).click();
    await carol.locator('article.request.approved').first().waitFor();

    await alice.locator('#current tr[data-grant]', { hasText: 'AdministratorAccess' }).locator('.status.active').waitFor({ timeout: 60_000 });
    await shot(alice, 'my-access');
    await alice.locator('#current tr[data-grant]', { hasText: ACCOUNT }).getByRole('link').first().click();
    await shot(alice, 'grant');

    const sam = (await signedIn(browser, consoleUrl, 'sam')).page;
    const today = new Date().toISOString().slice(0, 10);
    await sam.goto(`${consoleUrl}audit?${new URLSearchParams({ view: 'report', target: ACCOUNT, from: today, to: today })}`);
    await shot(sam, 'audit');
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
