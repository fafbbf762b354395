// Reading the audit trail (issue 13 §3) and the proof that it does not depend on Temporal (§4):
// the answers are the same after the grants' workflow executions are deleted.
import assert from 'node:assert/strict';
import { WorkflowNotFoundError } from '@temporalio/client';
import { csvCell } from '../src/cli/main';
import { grantEvents } from './support/audit';
import { access, show } from './support/cli';
import { assertErrorShape, call, current, ensure, eventually, freshAccount, grantReaching, target, temporalCli } from './support/world';

const DAY = 86_400_000;
const query = (params: Record<string, string | number | undefined>) =>
  new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)] as [string, string])).toString();

describe('audit API and access report', function () {
  this.timeout(180_000);
  const account = freshAccount();
  const other = freshAccount();
  const from = new Date(Date.now() - DAY).toISOString();
  const grantIds: string[] = [];

  const answers = async () => ({
    audit: await call('GET', `/v1/access/audit?${query({ from, target: target(account) })}`, { as: 'sam' }),
    denied: await call('GET', `/v1/access/audit?${query({ from, target: target(other) })}`, { as: 'sam' }),
    report: await call('GET', `/v1/access/report?${query({ target: account, from, to: new Date(Date.now() + 60_000).toISOString() })}`, { as: 'sam' }),
  });
  let first: Awaited<ReturnType<typeof answers>>;

  before(async () => {
    // Expired: ReadOnlyAccess for 3 seconds.
    const expiring = (await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 3 }], { reason: 'read logs' })).body.grants[0];
    // Extended, then revoked by its principal.
    const extended = (await ensure([{ target: target(account), role: 'PowerUserAccess', duration_seconds: 600 }], { reason: 'tune', attachments: ['OPS-1'] })).body.grants[0];
    await grantReaching(extended.id, 'active');
    const again = await ensure([{ target: target(account), role: 'PowerUserAccess', duration_seconds: 900 }], { reason: 'tune', attachments: ['OPS-1'] });
    assert.equal(again.body.grants[0].change, 'extended');
    await call('POST', `/v1/access/grants/${extended.id}/revoke`, { body: { reason: 'done' } });
    // Reviewed: approved by carol, revoked by carol.
    const reviewed = (await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'incident 42' })).body.grants[0];
    await call('POST', `/v1/access/requests/${reviewed.access_request_id}/review`, { as: 'carol', body: { decision: 'approve', comment: 'ok' } });
    await grantReaching(reviewed.id, 'active');
    await call('POST', `/v1/access/grants/${reviewed.id}/revoke`, { as: 'carol', body: { reason: 'incident over' } });
    // Denied, on another account.
    const denied = (await ensure([{ target: target(other), role: 'AdministratorAccess' }], { reason: 'curious' })).body.grants[0];
    await call('POST', `/v1/access/requests/${denied.access_request_id}/review`, { as: 'carol', body: { decision: 'deny' } });
    // Refused by policy (no ticket).
    assert.equal((await ensure([{ target: target(account), role: 'PowerUserAccess' }], { as: 'bob' })).status, 403);

    await grantEvents(expiring.id, ['activated', 'expired', 'deprovisioned']);
    await grantEvents(extended.id, ['extended', 'revoked', 'deprovisioned']);
    await grantEvents(reviewed.id, ['approved', 'revoked', 'deprovisioned']);
    await grantEvents(denied.id, ['denied']);
    grantIds.push(expiring.id, extended.id, reviewed.id, denied.id);
    first = await answers();
  });

  async function allPages(params: Record<string, string | number | undefined>): Promise<any[]> {
    const events: any[] = [];
    let cursor: string | undefined;
    do {
      const page = await call('GET', `/v1/access/audit?${query({ ...params, cursor })}`, { as: 'sam' });
      assert.equal(page.status, 200, JSON.stringify(page.body));
      assert.ok(page.body.events.length <= (params.limit ?? 100));
      events.push(...page.body.events);
      cursor = page.body.next_cursor ?? undefined;
    } while (cursor);
    return events;
  }

  it('lists the events newest first, filtered, in pages that add up to the whole', async () => {
    assert.equal(first.audit.status, 200, JSON.stringify(first.audit.body));
    const events = first.audit.body.events;
    const ats = events.map((e: any) => e.at);
    assert.deepEqual(ats, [...ats].sort().reverse(), 'newest first');
    for (const name of ['requested', 'approved', 'activated', 'extended', 'revoked', 'expired', 'deprovisioned', 'ensure_denied']) {
      assert.ok(events.some((e: any) => e.event === name), `${name} listed`);
    }
    assert.ok(events.every((e: any) => e.target === target(account)));
    assert.deepEqual(first.denied.body.events.map((e: any) => e.event).sort(), ['denied', 'requested']);

    const paged = await allPages({ from, target: target(account), limit: 2 });
    assert.deepEqual(paged, events, 'pages of 2 add up to the one answer');

    const approved = await allPages({ from, target: target(account), event: 'approved' });
    assert.deepEqual(approved.map((e) => [e.event, e.actor.id]), [['approved', 'carol']]);
    const bobs = await allPages({ from, target: target(account), principal: 'bob' });
    assert.deepEqual(bobs.map((e) => e.event), ['ensure_denied']);
    const readOnly = await allPages({ from, target: target(account), role: 'ReadOnlyAccess' });
    assert.deepEqual(readOnly.map((e) => e.event).reverse(), ['requested', 'activated', 'expired', 'deprovisioned']);
  });

  it('rebuilds who held what, when, as intervals', async () => {
    assert.equal(first.report.status, 200, JSON.stringify(first.report.body));
    const intervals = first.report.body.intervals;
    const byRole = Object.fromEntries(intervals.map((i: any) => [i.role, i]));
    assert.deepEqual(Object.keys(byRole).sort(), ['AdministratorAccess', 'PowerUserAccess', 'ReadOnlyAccess']);
    assert.equal(byRole.ReadOnlyAccess.ended, 'expired');
    assert.equal(byRole.ReadOnlyAccess.reason, 'read logs');
    assert.ok(Date.parse(byRole.ReadOnlyAccess.to) - Date.parse(byRole.ReadOnlyAccess.from) >= 3000);
    assert.equal(byRole.PowerUserAccess.ended, 'revoked');
    assert.equal(byRole.AdministratorAccess.ended, 'revoked');
    assert.deepEqual(byRole.AdministratorAccess.approved_by, ['carol']);
    assert.equal(byRole.AdministratorAccess.reason, 'incident 42');
    assert.match(byRole.AdministratorAccess.access_request_id, /^[0-9a-f-]{36}$/);
    for (const i of intervals) {
      assert.equal(i.principal_id, 'alice');
      assert.equal(i.principal_email, 'alice@example.com');
      assert.equal(i.target, target(account));
      assert.equal(i.preexisted, false);
      assert.ok(grantIds.includes(i.grant_id));
    }
  });

  it('the CLI: access audit and access report (text, JSON and CSV)', async () => {
    const approved = await access(['audit', '--from', from, '--target', account, '--event', 'approved'], { as: 'sam' });
    assert.equal(approved.code, 0, show(approved));
    const lines = approved.stdout.trim().split('\n');
    assert.match(lines[0], /^AT +EVENT +ACTOR +PRINCIPAL +ACCESS +GRANT$/);
    assert.equal(lines.length, 2, show(approved));
    assert.match(lines[1], new RegExp(`APPROVED +reviewer:carol +alice +AdministratorAccess on AWS::Account::${account}`));
    const json = await access(['audit', '--from', from, '--target', account, '--json'], { as: 'sam' });
    assert.deepEqual(JSON.parse(json.stdout).events, first.audit.body.events);

    const csv = await access(['report', '--target', account, '--from', from.slice(0, 10), '--to', new Date(Date.now() + DAY).toISOString().slice(0, 10), '--csv'], { as: 'sam' });
    assert.equal(csv.code, 0, show(csv));
    const rows = csv.stdout.trimEnd().split('\r\n');
    assert.equal(rows[0], 'principal_id,principal_email,target,role,from,to,grant_id,access_request_id,approved_by,reason,ended,preexisted');
    assert.equal(rows.length, 4, csv.stdout);
    for (const interval of first.report.body.intervals) {
      assert.ok(rows.some((r) => r.includes(interval.grant_id) && r.includes(interval.ended)), interval.grant_id);
    }
    assert.equal(csvCell('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`, 'a formula is not a formula in the CSV');
    assert.equal(csvCell('fix \x1b[2J\x1b]0;title\x07db\u202e\r\nnow'), 'fix db  now', 'no escape sequence or control character reaches a terminal that shows the CSV');

    const refused = await access(['report', '--target', account, '--from', '2026-10-01', '--to', '2026-12-31']);
    assert.equal(refused.code, 2, show(refused));
  });

  it('is the audit permission: 403 to whoever the policies do not let audit; bad ranges and cursors are 400', async () => {
    for (const path of [`/v1/access/audit?${query({ from })}`, `/v1/access/report?${query({ target: account, from, to: new Date().toISOString() })}`]) {
      const refused = await call('GET', path, { as: 'alice' });
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assertErrorShape(refused, 'forbidden');
    }
    const wide = await call('GET', `/v1/access/audit?${query({ from: '2026-01-01T00:00:00Z', to: '2026-04-03T00:00:01Z' })}`, { as: 'sam' });
    assert.equal(wide.status, 400);
    assertErrorShape(wide, 'invalid_request');
    const backwards = await call('GET', `/v1/access/report?${query({ target: account, from: '2026-02-01', to: '2026-01-01' })}`, { as: 'sam' });
    assert.equal(backwards.status, 400);
    for (const cursor of ['garbage', Buffer.from('{"at":1}').toString('base64url')]) {
      const bad = await call('GET', `/v1/access/audit?${query({ from, cursor })}`, { as: 'sam' });
      assert.equal(bad.status, 400, cursor);
      assertErrorShape(bad, 'invalid_request');
    }
    const unknownEvent = await call('GET', `/v1/access/audit?${query({ from, event: 'hacked' })}`, { as: 'sam' });
    assert.equal(unknownEvent.status, 400);
  });

  it('reads the days asked about in any year: a range in the year 20 answers at once, with nothing in it', async () => {
    // JavaScript's Date.UTC reads years 0 to 99 as 1900 to 1999: a day of the year 20 taken apart and
    // put back together with it is one of 1920, and the days back from there to the year 20 are 693,960.
    const day = '0020-02-29';
    for (const [path, empty] of [
      [`/v1/access/audit?${query({ from: `${day}T00:00:00Z`, to: `${day}T00:00:00Z` })}`, { events: [], next_cursor: null }],
      [`/v1/access/report?${query({ target: account, from: day, to: day })}`, { intervals: [] }],
    ] as const) {
      const started = Date.now();
      const reply = await Promise.race([
        call('GET', path, { as: 'sam' }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${path}: no answer in 10 s`)), 10_000).unref()),
      ]);
      assert.deepEqual([reply.status, reply.body], [200, empty], `${path} (${Date.now() - started} ms)`);
    }
  });

  it('answers exactly as before once Temporal has forgotten the grants (their executions deleted)', async () => {
    const { temporal } = current();
    const executions: { workflowId: string; runId: string }[] = [];
    for (const id of grantIds) {
      for await (const info of temporal.workflow.list({ query: `AccessGrantId = '${id}'` })) executions.push({ workflowId: info.workflowId, runId: info.runId });
    }
    assert.ok(executions.length >= grantIds.length);
    for (const e of executions) temporalCli(['workflow', 'delete', '--workflow-id', e.workflowId, '--run-id', e.runId]);
    // Deletion is asynchronous in the server: wait until every execution is gone.
    for (const e of executions) {
      await eventually(`${e.workflowId} deleted`, async () => {
        try {
          await temporal.workflow.getHandle(e.workflowId, e.runId).describe();
          return undefined;
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return true;
          throw err;
        }
      }, 90_000);
    }
    const after = await answers();
    assert.deepEqual(after.audit.body, first.audit.body);
    assert.deepEqual(after.denied.body, first.denied.body);
    assert.deepEqual(after.report.body, first.report.body);
  });
});
