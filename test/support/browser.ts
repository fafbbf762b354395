// Real Chromium, from the operating system's packages (scripts/install.sh), driven by playwright-core:
// the console's tests see what a person sees. One browser per test file; one context per person.
import { readFileSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** CHROMIUM names another build; the default is Debian's package. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  // No sandbox: CI runs as root, where Chromium's sandbox will not start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export const PHONE = { width: 375, height: 667 };

/**
 * Opens the console at `url` in a new context and signs in at the provider's page as `login` (the
 * dev provider takes any password); answers on the console page signed in to.
 */
export async function signedIn(browser: Browser, url: string, login: string, viewport?: { width: number; height: number }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: viewport ?? { width: 1280, height: 900 } });
  const page = await context.newPage();
  // A dialog is what an injected script would open: none may appear.
  page.on('dialog', (dialog) => {
    throw new Error(`a dialog opened: ${dialog.message()}`);
  });
  await page.goto(url);
  await page.locator('input[name=login]').fill(login);
  await page.locator('input[name=password]').fill('any');
  await page.locator('button[type=submit]').click();
  try {
    await page.waitForURL((u) => u.href.startsWith(new URL(url).origin) && !u.pathname.endsWith('/callback'), { timeout: 30_000 });
  } catch (err) {
    throw new Error(`${login} did not get back to the console (at ${page.url()}: ${(await page.locator('body').innerText().catch(() => '')).slice(0, 500)})`, { cause: err });
  }
  return { context, page };
}

const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeFinding {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/** axe-core's findings of serious or critical impact on the page as it is now. */
export async function seriousAccessibilityFindings(page: Page): Promise<AxeFinding[]> {
  // Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not govern.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
