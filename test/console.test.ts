// The web console (issue 38) in real Chromium: people sign in at the tenant's OpenID Connect
// provider, request, review, watch their access change without a reload, revoke and audit, on the
// real stack (the shipped policies, moto). What is asserted is what a person sees, and what then
// exists in (emulated) AWS.
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, PHONE, seriousAccessibilityFindings, signedIn } from './support/browser';
import { assignmentsOf, CONSOLE_ACCOUNTS, CONSOLE_TENANT, current, eventually, reconciliationRound } from './support/world';

/** Markup that would run if drawn as HTML, and a formula a spreadsheet would run from the CSV. */
const XSS_REASON = `=HYPERLINK("https://evil.example") <script>alert("reason")</script><img src=x onerror=alert(1)> needed for INC-1`;
/** A ticket link (so it counts as one) with markup after it. */
const XSS_TICKET = `https://tickets.example.com/browse/T-1?"><b id=injected>x</b>`;

describe('the web console in a browser', function () {
  this.timeout(180_000);
  let browser: Browser;
  let consoleUrl: string;
  const pages: Page[] = [];

  const as = async (login: string, viewport?: { width: number; height: number }) => {
    const { page } = await signedIn(browser, consoleUrl, login, viewport);
    pages.push(page);
    return page;
  };
  const expectNoSeriousFindings = async (page: Page, what: string) => {
    const findings = await seriousAccessibilityFindings(page);
    assert.deepEqual(findings, [], `${what}: axe found ${JSON.stringify(findings, null, 1)}`);
  };
  /** Chooses (account, role) pairs on the request page, by their checkbox's value. */
  const choose = async (page: Page, pairs: string[]) => {
    for (const p of pairs) await page.locator(`input[name=pair][value="${p}"]`).check();
  };

  before(async () => {
    // The catalogue lists the permission sets the last reconciliation round read.
    await reconciliationRound(CONSOLE_TENANT.id);
    browser = await launchChromium();
    consoleUrl = `${current().baseUrl}/t/${CONSOLE_TENANT.id}/`;
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.context().close()));
  });
  after(async () => {
    await browser?.close();
  });

  it('alice requests a reviewed role on two accounts, carol approves, alice sees both active without a reload, revokes one, sam audits it', async () => {
    const alice = await as('alice');
    assert.match(await alice.locator('h1').innerText(), /My access/);
    await expectNoSeriousFindings(alice, 'my access');

    await alice.getByRole('link', { name: 'Request access' }).click();
    await alice.getByLabel('Role', { exact: true }).fill('AdministratorAccess');
    await alice.getByRole('button', { name: 'Search' }).click();
    await expectNoSeriousFindings(alice, 'request');
    const pairs = [`${CONSOLE_ACCOUNTS.sandbox}|AdministratorAccess`, `${CONSOLE_ACCOUNTS.tools}|AdministratorAccess`];
    await choose(alice, pairs);
    await alice.getByLabel('Reason', { exact: true }).fill(XSS_REASON);
    await alice.getByLabel(/Ticket/).fill(XSS_TICKET);
    await alice.getByLabel(/Duration in minutes/).fill('30');

    // The dry run says what would happen, and nothing is sent.
    await alice.getByRole('button', { name: 'Preview' }).click();
    const preview = alice.locator('section.preview');
    assert.match(await preview.innerText(), /What would happen/);
    assert.equal(await preview.locator('li', { hasText: 'a request for review' }).count(), 2, await preview.innerText());
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.sandbox, 'AdministratorAccess', CONSOLE_TENANT.id), 0);
    // What was typed and chosen is kept across the preview.
    assert.equal(await alice.getByLabel('Reason', { exact: true }).inputValue(), XSS_REASON);
    for (const p of pairs) assert.ok(await alice.locator(`input[name=pair][value="${p}"]`).isChecked());

    await alice.getByRole('button', { name: 'Send' }).click();
    await alice.waitForURL(/\/access\?/);
    assert.match(await alice.getByRole('status').innerText(), /2 sent for review/);
    const current_ = alice.locator('#current');
    assert.equal(await current_.locator('tr[data-grant]:has(.status.pending)').count(), 2, await current_.innerText());

    // carol, in a browser of her own, sees the request with everything a reviewer needs.
    const carol = await as('carol');
    await carol.getByRole('link', { name: 'Review' }).click();
    const card = carol.locator('article.request', { hasText: 'alice@example.com' }).filter({ hasText: CONSOLE_ACCOUNTS.tools });
    await card.waitFor();
    const cardText = await card.innerText();
    // The probe is shown as text: no element was made of it, no script ran (a dialog would fail the test).
    assert.ok(cardText.includes(XSS_REASON), cardText);
    assert.ok(cardText.includes(XSS_TICKET), cardText);
    assert.equal(await carol.locator('#injected').count(), 0);
    assert.match(cardText, /0 of 1/);
    assert.match(cardText, new RegExp(CONSOLE_ACCOUNTS.sandbox));
    assert.match(cardText, /reason given, ticket attached/);
    await expectNoSeriousFindings(carol, 'review');

    await card.getByLabel('Comment').fill('go ahead');
    await card.getByRole('button', { name: 'Approve' }).click();
    // Drawn again in place (htmx), not a new page.
    const decided = carol.locator('article.request.approved', { hasText: 'alice@example.com' });
    await decided.waitFor();
    assert.match(await decided.innerText(), /1 of 1/);
    assert.match(await decided.innerText(), /carol, .*go ahead/s);

    // alice's page, never reloaded, turns both grants active.
    const url = alice.url();
    for (const account of [CONSOLE_ACCOUNTS.sandbox, CONSOLE_ACCOUNTS.tools]) {
      await alice.locator('#current tr[data-grant]', { hasText: account }).locator('.status.active').waitFor({ timeout: 60_000 });
    }
    assert.equal(alice.url(), url);
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.sandbox, 'AdministratorAccess', CONSOLE_TENANT.id), 1);
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.tools, 'AdministratorAccess', CONSOLE_TENANT.id), 1);

    // Revoke one from its page.
    await alice.locator('#current tr[data-grant]', { hasText: CONSOLE_ACCOUNTS.tools }).getByRole('link').click();
    await expectNoSeriousFindings(alice, 'grant');
    await alice.getByRole('button', { name: 'Revoke now' }).click();
    await alice.waitForURL(/done=/);
    assert.match(await alice.locator('.facts').innerText(), /revoked/);
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.tools, 'AdministratorAccess', CONSOLE_TENANT.id), 0);
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.sandbox, 'AdministratorAccess', CONSOLE_TENANT.id), 1);

    // sam, an auditor, finds it in the report of the account, and in its CSV.
    const sam = await as('sam');
    await sam.getByRole('link', { name: 'Audit' }).click();
    await expectNoSeriousFindings(sam, 'audit');
    const today = new Date().toISOString().slice(0, 10);
    const report = sam.locator('form', { has: sam.locator('input[value=report]') });
    await report.getByLabel('Account id').fill(CONSOLE_ACCOUNTS.tools);
    await report.getByLabel('From').fill(today);
    await report.getByLabel('To').fill(today);
    await report.getByRole('button', { name: 'Show' }).click();
    const row = await eventually('the revoked grant in the report', async () => {
      const r = sam.locator('tr', { hasText: 'alice@example.com' });
      if ((await r.count()) === 0) {
        await sam.reload();
        return undefined;
      }
      return r.first();
    });
    assert.match(await row.innerText(), /revoked/);
    assert.match(await row.innerText(), /carol/);
    await expectNoSeriousFindings(sam, 'audit report');
    const [download] = await Promise.all([sam.waitForEvent('download'), sam.getByRole('link', { name: 'Download as CSV' }).click()]);
    const csv = await streamText(await download.createReadStream());
    assert.match(csv.split('\n')[0], /^principal_id,principal_email,target,role,from,to,ended/);
    assert.match(csv, new RegExp(`alice,alice@example.com,AWS::Account::${CONSOLE_ACCOUNTS.tools},AdministratorAccess,.*,revoked,carol`));
    // The reason is a cell of text, not a formula.
    assert.ok(csv.includes(`"'=HYPERLINK(""https://evil.example"")`), csv);

    // alice may not read the audit trail: the API's refusal, in words.
    await alice.getByRole('link', { name: 'Audit' }).click();
    const aliceReport = alice.locator('form', { has: alice.locator('input[value=report]') });
    await aliceReport.getByLabel('Account id').fill(CONSOLE_ACCOUNTS.tools);
    await aliceReport.getByLabel('From').fill(today);
    await aliceReport.getByLabel('To').fill(today);
    await aliceReport.getByRole('button', { name: 'Show' }).click();
    assert.match(await alice.getByRole('alert').innerText(), /forbidden/);
  });

  it('olga breaks the glass: the consequences are stated, the access is active at once, and reviewers see the use', async () => {
    const olga = await as('olga');
    await olga.goto(`${consoleUrl}request?${new URLSearchParams({ role: 'AdministratorAccess' })}`);
    assert.match(await olga.locator('fieldset', { hasText: 'Why' }).innerText(), /active at once without review, everyone responsible is told/);
    // Only on call, in an emergency: the catalogue does not offer it; she names it.
    await olga.getByLabel('Account id').fill(CONSOLE_ACCOUNTS.payments);
    await olga.getByLabel('Role name').fill('AdministratorAccess');
    await olga.getByLabel('Reason', { exact: true }).fill('payments are down, INC-7');
    await olga.getByLabel(/Duration in minutes/).fill('30');
    await olga.getByLabel(/Break-glass/).check();
    await olga.getByRole('button', { name: 'Send' }).click();
    await olga.waitForURL(/\/access\?/);
    assert.match(await olga.getByRole('status').innerText(), /1 active/);
    const row = olga.locator('#current tr[data-grant]', { hasText: CONSOLE_ACCOUNTS.payments });
    assert.match(await row.innerText(), /break-glass/i);
    await row.locator('.status.active').waitFor({ timeout: 60_000 });
    assert.equal(await assignmentsOf('olga', CONSOLE_ACCOUNTS.payments, 'AdministratorAccess', CONSOLE_TENANT.id), 1);

    const carol = await as('carol');
    await carol.getByRole('link', { name: 'Review' }).click();
    await carol.locator('article.request', { hasText: 'Break-glass for olga@example.com' }).waitFor();
  });

  it('a request carol denies ends pending for alice, with the comment; break-glass without a reason is refused in words, and nothing is asked', async () => {
    const alice = await as('alice');
    await alice.goto(`${consoleUrl}request?${new URLSearchParams({ q: 'payments' })}`);
    await choose(alice, [`${CONSOLE_ACCOUNTS.payments}|PowerUserAccess`]);
    await alice.getByLabel(/Break-glass/).check();
    await alice.getByRole('button', { name: 'Send' }).click();
    assert.match(await alice.getByRole('alert').innerText(), /break_glass needs a non-blank justification.reason/);
    await expectNoSeriousFindings(alice, 'request refused');

    await alice.getByLabel(/Break-glass/).uncheck();
    await choose(alice, [`${CONSOLE_ACCOUNTS.payments}|AdministratorAccess`]);
    await alice.locator(`input[name=pair][value="${CONSOLE_ACCOUNTS.payments}|PowerUserAccess"]`).uncheck();
    await alice.getByLabel('Reason', { exact: true }).fill('quarterly close');
    await alice.getByLabel(/Duration in minutes/).fill('30');
    await alice.getByRole('button', { name: 'Send' }).click();
    await alice.waitForURL(/\/access\?/);

    const carol = await as('carol');
    await carol.getByRole('link', { name: 'Review' }).click();
    const card = carol.locator('article.request', { hasText: 'alice@example.com' }).filter({ hasText: CONSOLE_ACCOUNTS.payments });
    // Production: two approvals (policies/administrator.cedar), shown as the threshold.
    assert.match(await card.innerText(), /0 of 2/);
    await card.getByLabel('Comment').fill('not during the freeze');
    await card.getByRole('button', { name: 'Deny' }).click();
    await carol.locator('article.request.denied', { hasText: 'not during the freeze' }).waitFor();

    const row = alice.locator('#current tr[data-grant]', { hasText: CONSOLE_ACCOUNTS.payments });
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    await alice.reload();
    const ended = alice.locator('section[aria-labelledby=history-title] tr[data-grant]', { hasText: CONSOLE_ACCOUNTS.payments });
    assert.match(await ended.innerText(), /revoked|denied/);
    await carol.goto(`${consoleUrl}review?status=denied`);
    assert.match(await carol.locator('article.request', { hasText: CONSOLE_ACCOUNTS.payments }).innerText(), /carol, .*not during the freeze/s);
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.payments, 'AdministratorAccess', CONSOLE_TENANT.id), 0);
  });

  it('dave approves from a phone, by keyboard alone; every page fits the width and passes axe there', async () => {
    const alice = await as('alice');
    await alice.goto(`${consoleUrl}request?${new URLSearchParams({ role: 'AdministratorAccess', q: 'tools' })}`);
    await choose(alice, [`${CONSOLE_ACCOUNTS.tools}|AdministratorAccess`]);
    await alice.getByLabel('Reason', { exact: true }).fill('deploy the fix');
    await alice.getByRole('button', { name: 'Send' }).click();
    await alice.waitForURL(/\/access\?/);

    const dave = await as('dave', PHONE);
    for (const path of ['access', 'request', 'review', 'audit']) {
      await dave.goto(`${consoleUrl}${path}`);
      const width = await dave.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= PHONE.width, `${path}: the page is ${width} px wide on a ${PHONE.width} px screen`);
      await expectNoSeriousFindings(dave, `${path} on a phone`);
    }
    await dave.goto(`${consoleUrl}review`);
    const card = dave.locator('article.request', { hasText: 'deploy the fix' });
    await card.waitFor();
    // Tab to the comment, type, Tab on to Approve, Enter: no pointer.
    const focused = () => dave.evaluate(() => `${document.activeElement?.tagName}:${document.activeElement?.getAttribute('name') ?? ''}:${document.activeElement?.textContent?.trim() ?? ''}`);
    const tabTo = async (what: RegExp) => {
      for (let i = 0; i < 80; i++) {
        const where = await focused();
        if (what.test(where) && (await card.evaluate((el) => el.contains(document.activeElement)))) return;
        await dave.keyboard.press('Tab');
      }
      assert.fail(`no ${what} reached by Tab`);
    };
    await tabTo(/^TEXTAREA:comment/);
    await dave.keyboard.type('from my phone');
    await tabTo(/^BUTTON:decision:Approve/);
    await dave.keyboard.press('Enter');
    await dave.locator('article.request.approved', { hasText: 'from my phone' }).waitFor();
    await alice.locator('#current tr[data-grant]', { hasText: CONSOLE_ACCOUNTS.tools }).locator('.status.active').waitFor({ timeout: 60_000 });
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.tools, 'AdministratorAccess', CONSOLE_TENANT.id), 1);
  });

  it('refuses a state change without the session, without its CSRF token, or from another origin, and changes nothing', async () => {
    const mallory = await as('mallory');
    // mallory (in no group) is offered what anyone may have, and nothing more.
    await mallory.getByRole('link', { name: 'Request access' }).click();
    const offered = await mallory.locator('fieldset').first().innerText();
    assert.match(offered, /ReadOnlyAccess/);
    assert.doesNotMatch(offered, /AdministratorAccess|PowerUserAccess/);

    const alice = await as('alice');
    const cookies = await alice.context().cookies();
    const session = cookies.find((c) => c.name === `access_session_${CONSOLE_TENANT.id}`)!;
    assert.ok(session.httpOnly, 'the session cookie is httpOnly');
    assert.equal(session.sameSite, 'Lax');
    const csrf = await alice.locator('input[name=_csrf]').first().inputValue();
    const form = (extra: Record<string, string>) =>
      new URLSearchParams({ pair: `${CONSOLE_ACCOUNTS.sandbox}|ReadOnlyAccess`, reason: 'probe', action: 'send', ...extra }).toString();
    const post = (headers: Record<string, string>, body: string) =>
      fetch(`${consoleUrl}request`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
    const cookie = `${session.name}=${session.value}`;

    const noSession = await post({}, form({ _csrf: csrf }));
    assert.equal(noSession.status, 401);
    const noToken = await post({ cookie }, form({}));
    assert.equal(noToken.status, 403);
    assert.match(await noToken.text(), /CSRF/);
    const wrongToken = await post({ cookie }, form({ _csrf: `${csrf.slice(0, -2)}xx` }));
    assert.equal(wrongToken.status, 403);
    const elsewhere = await post({ cookie, origin: 'https://evil.example' }, form({ _csrf: csrf }));
    assert.equal(elsewhere.status, 403);
    const tampered = await post({ cookie: `${session.name}=${session.value.slice(0, -4)}AAAA` }, form({ _csrf: csrf }));
    assert.equal(tampered.status, 401);
    assert.equal(await assignmentsOf('alice', CONSOLE_ACCOUNTS.sandbox, 'ReadOnlyAccess', CONSOLE_TENANT.id), 0, 'nothing was asked');

    // The same call with the session and its token goes through (the refusals above were for their reasons).
    const sent = await post({ cookie, origin: new URL(consoleUrl).origin }, form({ _csrf: csrf }));
    assert.equal(sent.status, 303);
    await eventually('ReadOnlyAccess active', async () => ((await assignmentsOf('alice', CONSOLE_ACCOUNTS.sandbox, 'ReadOnlyAccess', CONSOLE_TENANT.id)) === 1 ? true : undefined));

    // Only a grant or request id goes into the API's paths; a review says approve or deny, or nothing happens.
    assert.equal((await fetch(`${consoleUrl}access/not-a-grant`, { headers: { cookie } })).status, 404);
    const undecided = await fetch(`${consoleUrl}review/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, decision: 'approve!' }).toString(),
    });
    assert.equal(undecided.status, 400);

    // Every page answers with a strict Content-Security-Policy and no inline script.
    const page = await fetch(`${consoleUrl}access`, { headers: { cookie } });
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';.*frame-ancestors 'none'/);
    assert.doesNotMatch(await page.text(), /<script(?![^>]*\ssrc=)[^>]*>/);

    // Sign-out ends the session: the cookie is gone, and the console asks to sign in again.
    await alice.getByRole('button', { name: 'Sign out' }).click();
    await alice.waitForURL(/signed-out/);
    await expectNoSeriousFindings(alice, 'signed out');
    assert.equal((await alice.context().cookies()).filter((c) => c.name === session.name).length, 0);
    // The next page goes through the provider again (whose own session signs her in without typing).
    const toProvider: string[] = [];
    alice.on('request', (r) => r.url().startsWith(current().stack.identityProviderOf(CONSOLE_TENANT.id)!.issuer) && toProvider.push(r.url()));
    await alice.goto(`${consoleUrl}access`);
    assert.ok(toProvider.some((u) => new URL(u).searchParams.get('client_id') === 'access-console'), `no sign-in at the provider: ${toProvider.join(', ')}`);
    // A copy of the cookie taken before is refused too (by this API process: docs/console.md).
    assert.equal((await fetch(`${consoleUrl}access`, { headers: { cookie }, redirect: 'manual' })).status, 303);
  });
});

async function streamText(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
