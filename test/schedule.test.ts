// Scheduled start (`starts_at`, issue 22 §1): a grant that is pending until its start, then
// provisioned by a durable timer, its clock starting at activation. Against moto, through HTTP.
import assert from 'node:assert/strict';
import { type GrantView, grantWorkflowId } from '../src/domain/grant';
import { parseStart } from '../src/cli/main';
import { grantEvents } from './support/audit';
import { access, show } from './support/cli';
import { assertErrorShape, assertNoGrantRun, assignmentsOf, call, eventually, freshAccount, grantReaching, recordHistory, target, TENANT, temporalCli, type USERS } from './support/world';

type User = keyof typeof USERS;

const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();
/**
 * How far ahead the tests that wait for a start schedule it: far enough that every "still
 * pending" check is made before it on a slow machine.
 */
const AHEAD_SECONDS = 30;
/** A "still pending" check just made says something only if the start is still ahead: else fail loudly. */
function assertStillAhead(startsAt: string): void {
  assert.ok(Date.now() < Date.parse(startsAt), `the start (${startsAt}) passed before the check was made: this machine is too slow for the test`);
}

async function ensureAt(account: string, role: string, startsAt: string | undefined, opts: { as?: User; duration?: number; dryRun?: boolean; breakGlass?: boolean } = {}) {
  return call('POST', '/v1/access/ensure', {
    as: opts.as,
    body: {
      entitlements: [{ target: target(account), role, duration_seconds: opts.duration ?? 600 }],
      justification: { reason: 'change window' },
      ...(startsAt !== undefined && { starts_at: startsAt }),
      ...(opts.dryRun && { dry_run: true }),
      ...(opts.breakGlass && { break_glass: true }),
    },
  });
}

const diagnostic = (g: GrantView, code: string) => g.diagnostics.find((d) => d.code === code);

describe('scheduled start', function () {
  this.timeout(120_000);

  it('a scheduled grant is pending with no assignment until starts_at, then active for its duration from activation', async () => {
    const account = freshAccount();
    const startsAt = inSeconds(AHEAD_SECONDS);
    const reply = await ensureAt(account, 'ReadOnlyAccess', startsAt);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const [grant] = reply.body.grants as GrantView[];
    assert.equal(grant.change, 'activated');
    assert.equal(grant.status, 'pending');
    assert.equal(grant.approved, true);
    assert.equal(grant.starts_at, startsAt);
    assert.equal(grant.expires_at, null);
    assert.equal(diagnostic(grant, 'scheduled')?.level, 'info');
    assert.match(diagnostic(grant, 'scheduled')!.message, new RegExp(startsAt.replace(/[.]/g, '\\.')));

    // The same call again changes nothing; another start time is told when this one starts.
    const again = await ensureAt(account, 'ReadOnlyAccess', startsAt);
    assert.equal(again.body.grants[0].change, 'none');
    assert.equal(again.body.grants[0].id, grant.id);
    const other = await ensureAt(account, 'ReadOnlyAccess', inSeconds(3600));
    assert.equal(other.body.grants[0].change, 'none');
    assert.equal(other.body.grants[0].status, 'pending');
    assert.equal(diagnostic(other.body.grants[0], 'scheduled')?.starts_at, startsAt, JSON.stringify(other.body));

    const listed = await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}`);
    assert.deepEqual(listed.body.grants.map((g: GrantView) => [g.status, g.starts_at]), [['pending', startsAt]]);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0, 'nothing is made before the start');
    assertStillAhead(startsAt);

    const active = await grantReaching(grant.id, 'active', 'alice', (AHEAD_SECONDS + 30) * 1000);
    assert.ok(Date.parse(active.activated_at!) >= Date.parse(startsAt), `activated ${active.activated_at}, not before ${startsAt}`);
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 600_000, 'the clock starts at activation');
    assert.equal(diagnostic(active, 'scheduled'), undefined);
    assert.equal(active.starts_at, startsAt, 'the grant keeps when it was scheduled');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);

    const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { body: { reason: 'done' } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    await recordHistory('scheduled-activate-revoke', grant.id);
  });

  it('reviewers approve ahead of time: the grant waits for its start, then activates', async () => {
    const account = freshAccount();
    const startsAt = inSeconds(AHEAD_SECONDS);
    const reply = await ensureAt(account, 'AdministratorAccess', startsAt);
    const [grant] = reply.body.grants as GrantView[];
    assert.equal(grant.change, 'requested', JSON.stringify(reply.body));
    assert.equal(grant.status, 'pending');
    assert.ok(diagnostic(grant, 'scheduled') && diagnostic(grant, 'review_required'), JSON.stringify(grant.diagnostics));
    const request = await call('GET', `/v1/access/requests/${grant.access_request_id}`, { as: 'carol' });
    assert.equal(request.body.status, 'pending');
    // A scheduled request waits for reviewers until the usual time past its start.
    assert.ok(Date.parse(request.body.expires_at) > Date.parse(startsAt), JSON.stringify(request.body));

    const approved = await call('POST', `/v1/access/requests/${grant.access_request_id}/review`, { as: 'carol', body: { decision: 'approve' } });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
    assert.equal(approved.body.grants[0].status, 'pending', 'approved ahead of its start: still pending');
    assert.equal(approved.body.grants[0].approved, true);
    const queue = await call('GET', '/v1/access/requests?status=pending', { as: 'carol' });
    assert.ok(!queue.body.requests.some((r: { id: string }) => r.id === grant.access_request_id), 'an approved request leaves the queue');
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
    assertStillAhead(startsAt);

    const active = await grantReaching(grant.id, 'active', 'alice', (AHEAD_SECONDS + 30) * 1000);
    assert.ok(Date.parse(active.activated_at!) >= Date.parse(startsAt));
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 600_000);
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 1);
    await call('POST', `/v1/access/grants/${grant.id}/revoke`, { body: {} });
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
    await recordHistory('scheduled-approve-ahead-revoke', grant.id);
  });

  it('revoking a scheduled grant withdraws it: nothing is ever made', async () => {
    const account = freshAccount();
    const reply = await ensureAt(account, 'AdministratorAccess', inSeconds(3600));
    const [grant] = reply.body.grants as GrantView[];
    const revoked = await call('POST', `/v1/access/grants/${grant.id}/revoke`, { body: { reason: 'window cancelled' } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.status, 'revoked');
    const request = await call('GET', `/v1/access/requests/${grant.access_request_id}`);
    assert.equal(request.body.status, 'withdrawn');
    const auto = (await ensureAt(account, 'ReadOnlyAccess', inSeconds(3600))).body.grants[0] as GrantView;
    assert.equal((await call('POST', `/v1/access/grants/${auto.id}/revoke`, { body: {} })).body.status, 'revoked');
    // Both are on record as withdrawn, and neither was ever activated.
    for (const id of [grant.id, auto.id]) {
      const events = await grantEvents(id, ['requested', 'withdrawn']);
      assert.ok(!events.some((e) => e.event.event === 'activated' || e.event.event === 'revoked'), JSON.stringify(events.map((e) => e.event.event)));
    }
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
  });

  it('an operator approves a scheduled request with a signal, then cancels the workflow: withdrawn before its start, nothing made', async () => {
    const account = freshAccount();
    const grant = (await ensureAt(account, 'AdministratorAccess', inSeconds(3600))).body.grants[0] as GrantView;
    const workflowId = grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'AdministratorAccess' });
    temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', 'approve', '--input', JSON.stringify({ reviewer: 'carol', comment: 'ok' })]);
    const approved = await eventually('the operator approval', async () => {
      const g = (await call<GrantView>('GET', `/v1/access/grants/${grant.id}`)).body;
      return g.approved ? g : undefined;
    });
    assert.deepEqual([approved.status, approved.starts_at], ['pending', grant.starts_at], 'approved ahead of its start');
    temporalCli(['workflow', 'cancel', '--workflow-id', workflowId]);
    const revoked = await grantReaching(grant.id, 'revoked');
    assert.equal(revoked.activated_at, null);
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 0);
  });

  it('an ensure without starts_at starts a scheduled grant now when policy lets it activate', async () => {
    const account = freshAccount();
    const scheduled = (await ensureAt(account, 'ReadOnlyAccess', inSeconds(3600))).body.grants[0] as GrantView;
    const now = await ensureAt(account, 'ReadOnlyAccess', undefined, { duration: 900 });
    assert.equal(now.status, 200, JSON.stringify(now.body));
    assert.equal(now.body.grants[0].change, 'activated');
    assert.equal(now.body.grants[0].id, scheduled.id, 'the same grant, started now');
    assert.equal(now.body.grants[0].starts_at, null);
    const active = await grantReaching(scheduled.id, 'active');
    assert.equal(Date.parse(active.expires_at!) - Date.parse(active.activated_at!), 900_000);
    assert.ok(diagnostic(active, 'started_now'), JSON.stringify(active.diagnostics));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);

    // A scheduled request policy does not let activate stays as it is.
    const reviewed = (await ensureAt(account, 'AdministratorAccess', inSeconds(3600))).body.grants[0] as GrantView;
    const asked = await ensureAt(account, 'AdministratorAccess', undefined);
    assert.equal(asked.body.grants[0].change, 'none');
    assert.equal(asked.body.grants[0].status, 'pending');
    assert.equal(asked.body.grants[0].starts_at, reviewed.starts_at);
    // A start on an active grant changes nothing, and says so.
    const ignored = await ensureAt(account, 'ReadOnlyAccess', inSeconds(7200));
    assert.equal(ignored.body.grants[0].change, 'none');
    assert.ok(diagnostic(ignored.body.grants[0], 'schedule_ignored'), JSON.stringify(ignored.body));
    for (const id of [scheduled.id, reviewed.id]) await call('POST', `/v1/access/grants/${id}/revoke`, { body: {} });
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
  });

  it('a start already past is now; one too far ahead, not RFC 3339, or with break_glass is refused and changes nothing', async () => {
    const account = freshAccount();
    const past = await ensureAt(account, 'ReadOnlyAccess', inSeconds(-60));
    assert.equal(past.body.grants[0].change, 'activated', JSON.stringify(past.body));
    assert.equal(past.body.grants[0].status, 'provisioning');
    assert.equal(past.body.grants[0].starts_at, null);
    await call('POST', `/v1/access/grants/${past.body.grants[0].id}/revoke`, { body: {} });

    const other = freshAccount();
    const tooFar = await ensureAt(other, 'ReadOnlyAccess', inSeconds(31 * 24 * 3600));
    assert.equal(tooFar.status, 400, JSON.stringify(tooFar.body));
    assertErrorShape(tooFar, 'invalid_request');
    assert.equal(tooFar.body.details.max_schedule_ahead_seconds, 30 * 24 * 3600);
    for (const bad of ['tomorrow', '2026-12-05T02:00:00', '2026-13-01T00:00:00Z']) {
      const reply = await ensureAt(other, 'ReadOnlyAccess', bad);
      assert.equal(reply.status, 400, `${bad}: ${JSON.stringify(reply.body)}`);
      assertErrorShape(reply, 'invalid_request');
    }
    const glass = await ensureAt(other, 'AdministratorAccess', inSeconds(600), { as: 'olga', breakGlass: true });
    assert.equal(glass.status, 400, JSON.stringify(glass.body));
    // Nothing was started.
    await assertNoGrantRun('alice', other, 'ReadOnlyAccess');
    await assertNoGrantRun('olga', other, 'AdministratorAccess');
  });

  it('a dry run says what a scheduled call would do and makes nothing', async () => {
    const account = freshAccount();
    const startsAt = inSeconds(600);
    const dry = await ensureAt(account, 'ReadOnlyAccess', startsAt, { dryRun: true });
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.deepEqual([dry.body.grants[0].change, dry.body.grants[0].status, dry.body.grants[0].starts_at], ['activated', 'pending', startsAt]);
    assert.ok(diagnostic(dry.body.grants[0], 'scheduled'));
    const listed = await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}`);
    assert.deepEqual(listed.body.grants, []);
  });

  it('the CLI schedules with --start (a time of day or RFC 3339), and `access grants` shows when it starts', async () => {
    const account = freshAccount();
    const startsAt = new Date(Date.now() + 3_600_000).toISOString();
    const run = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--duration', '30m', '--start', startsAt]);
    assert.equal(run.code, 0, show(run));
    assert.match(run.stdout, new RegExp(`^ACTIVATED +ReadOnlyAccess on AWS::Account::${account} starts at ${startsAt.replace(/[.]/g, '\\.')}, for 30m$`, 'm'), show(run));
    const listed = await access(['grants', '--target', account]);
    assert.match(listed.stdout, new RegExp(`^PENDING +ReadOnlyAccess +AWS::Account::${account} +starts ${startsAt.replace(/[.]/g, '\\.')}`, 'm'), show(listed));
    const bad = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--start', 'soon']);
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stderr, /expected a time of day/, show(bad));
    const id = /\S+$/.exec(listed.stdout.trim().split('\n').at(-1)!)![0];
    const still = await call('GET', `/v1/access/grants/${id}`);
    assert.deepEqual([still.body.status, still.body.starts_at, still.body.duration_seconds], ['pending', startsAt, 1800], 'the scheduled grant as it was');
    assert.equal((await call('POST', `/v1/access/grants/${id}/revoke`, { body: {} })).status, 200);
  });

  it('--start HH:MM is the next such time on this machine', () => {
    const now = new Date(2026, 11, 4, 13, 30);
    assert.equal(parseStart('14:00', now), new Date(2026, 11, 4, 14, 0).toISOString());
    assert.equal(parseStart('02:00', now), new Date(2026, 11, 5, 2, 0).toISOString());
    assert.equal(parseStart('2026-12-05T02:00:00+01:00', now), '2026-12-05T01:00:00.000Z');
    for (const bad of ['25:00', '2026-12-05T02:00:00', 'soon']) assert.throws(() => parseStart(bad, now), /expected a time of day/);
  });
});
