// The console: a person's first load of a page, as a browser does it.
import { reconcileScheduleId } from '../../src/schedules';
import { waitFor } from '../../scripts/stack';
import { launchChromium, signedIn } from '../../test/support/browser';
import { CONSOLE_GRANTS, CONSOLE_TENANT, USER, account, settings } from '../settings';
import { type Scenario, x, yes } from '../scenario';
import { percentile, round } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'console',
  key: 'console',
  title: 'console',
  run,
  rows: (consolePages: any, s) => {
    const c = consolePages;
    const row = (name: 'access' | 'request', label: string) => {
      const p = c[name];
      return [
        [`console: first load of ${label} (no cache, signed in): p50 / p99`, `${p.loadMs.p50} / ${p.loadMs.p99} ms (HTML ${p.htmlMs.p50} / ${p.htmlMs.p99} ms)`, `${p.floorMs.p50} / ${p.floorMs.p99} ms (the API calls it makes)`, x(p.htmlMs.p50, p.floorMs.p50), 'p50 < 300 ms', yes(p.loadMs.p50 < 300)],
      ];
    };
    return [
      ...row('access', `My access (${c.grants} grants)`),
      ...row('request', 'Request access (a page of the catalogue)'),
      ['console: script on a first load', `${c.scriptKB} KB (and ${c.stylesheetKB} KB of stylesheet)`, '', '', '< 100 KB', yes(c.scriptKB < 100)],
    ];
  },
};

async function run(b: Bench) {
  const { api, temporal, stack, ensureBody } = b;
  const id = CONSOLE_TENANT.id;
  const consoleUrl = `${api}/t/${id}/`;
  const token = await stack.issueToken(id, USER, { expiresIn: '4h' });
  const headers = { authorization: `Bearer ${token}`, 'x-tenant-id': id };
  // What My access shows: grants held (the reconciliation round names the permission sets the Request page lists).
  const schedule = temporal.schedule.getHandle(reconcileScheduleId(id));
  await waitFor("the console tenant's Schedule", async () => Boolean(await schedule.describe().catch(() => undefined)), 60_000);
  await schedule.trigger();
  for (let n = 0; n < CONSOLE_GRANTS; n++) {
    const res = await fetch(`${api}/v1/access/ensure`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: ensureBody(account(9, n), 7200) });
    if (!res.ok) throw new Error(`console grants: HTTP ${res.status} ${await res.text()}`);
  }
  await waitFor('the catalogue', async () => {
    const res = await fetch(`${api}/v1/access/entitlements?limit=1`, { headers });
    return res.ok && ((await res.json()) as { entitlements: unknown[] }).entitlements.length > 0;
  }, 120_000);

  const browser = await launchChromium();
  try {
    const { context } = await signedIn(browser, consoleUrl, USER.sub);
    const cookies = await context.cookies();
    await context.close();
    const pages = { access: 'My access', request: 'Request access' } as const;
    const loads: Record<keyof typeof pages, { html: number[]; load: number[] }> = { access: { html: [], load: [] }, request: { html: [], load: [] } };
    let scriptBytes = 0;
    let stylesheetBytes = 0;
    for (let n = 0; n < settings.consoleSamples; n++) {
      for (const name of Object.keys(pages) as (keyof typeof pages)[]) {
        // A new context each time: no cache, the session cookie only.
        const fresh = await browser.newContext();
        await fresh.addCookies(cookies);
        const page = await fresh.newPage();
        await page.goto(`${consoleUrl}${name}`, { waitUntil: 'load' });
        if (!(await page.locator('h1').innerText()).includes(pages[name])) throw new Error(`console ${name}: not the page (${page.url()})`);
        const timing = await page.evaluate(() => {
          const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
          const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
          const bytes = (type: string) => resources.filter((r) => r.initiatorType === type).reduce((sum, r) => sum + r.encodedBodySize, 0);
          return { html: nav.responseEnd - nav.startTime, load: nav.loadEventEnd - nav.startTime, script: bytes('script'), css: bytes('link') };
        });
        loads[name].html.push(timing.html);
        loads[name].load.push(timing.load);
        scriptBytes = Math.max(scriptBytes, timing.script);
        stylesheetBytes = Math.max(stylesheetBytes, timing.css);
        await fresh.close();
      }
    }
    // The floor: the API calls each page makes, from the same process's address, with the person's token.
    const floors: Record<keyof typeof pages, number[]> = { access: [], request: [] };
    for (let n = 0; n < settings.consoleSamples; n++) {
      let started = performance.now();
      await Promise.all([
        ...['active', 'provisioning', 'pending'].map((status) => fetch(`${api}/v1/access/grants?status=${status}&limit=100`, { headers }).then((r) => r.text())),
        fetch(`${api}/v1/access/grants?limit=50`, { headers }).then((r) => r.text()),
      ]);
      floors.access.push(performance.now() - started);
      started = performance.now();
      await fetch(`${api}/v1/access/entitlements`, { headers }).then((r) => r.text());
      floors.request.push(performance.now() - started);
    }
    const ms = (values: number[]) => ({ p50: round(percentile(values, 50), 1), p99: round(percentile(values, 99), 1) });
    return {
      samples: settings.consoleSamples,
      grants: CONSOLE_GRANTS,
      scriptKB: round(scriptBytes / 1024, 1),
      stylesheetKB: round(stylesheetBytes / 1024, 1),
      access: { htmlMs: ms(loads.access.html), loadMs: ms(loads.access.load), floorMs: ms(floors.access) },
      request: { htmlMs: ms(loads.request.html), loadMs: ms(loads.request.load), floorMs: ms(floors.request) },
    };
  } finally {
    await browser.close();
  }
}
