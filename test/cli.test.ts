// The `access` CLI, run for real (the compiled bin from package.json) against the test stack's API.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../scripts/stack';
import { access, show } from './support/cli';
import { assertNoGrantRun, assignmentsOf, call, current, eventually, freshAccount, grantReaching, NEIGHBOUR_ACCOUNT, NEIGHBOUR_TENANT, QUOTA_ACCOUNTS, QUOTA_TENANT, target, TENANT, tokenFor, USERS } from './support/world';

describe('cli', function () {
  this.timeout(180_000);

  it('has --help on every command', async () => {
    for (const args of [['--help'], ['login', '--help'], ['logout', '--help'], ['whoami', '--help'], ['ensure', '--help'], ['grants', '--help'], ['requests', '--help'], ['request', '--help'], ['review', '--help'], ['revoke', '--help'], ['entitlements', '--help'], ['list', '--help'], ['completion', '--help']]) {
      const run = await access(args);
      assert.equal(run.code, 0, show(run));
      assert.match(run.stdout, /^Usage: access/m, show(run));
    }
    // npm itself may run on an older Node than the project's own (the `node` package's): `npx access` says nothing of it.
    const machinePath = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => !dir.includes('node_modules')).join(path.delimiter);
    const npx = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile('npx', ['access', '--help'], { cwd: repoRoot, env: { PATH: machinePath, HOME: process.env.HOME } }, (err, _stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stderr }),
      ),
    );
    assert.equal(npx.code, 0, npx.stderr);
    assert.doesNotMatch(npx.stderr, /npm warn/i);
    const ensureHelp = await access(['ensure', '--help']);
    for (const flag of ['--target', '--role', '--duration', '--reason', '--attach', '--dry-run', '--wait', '--json']) {
      assert.ok(ensureHelp.stdout.includes(flag), `ensure --help mentions ${flag}`);
    }
  });

  it('ensure --break-glass asks for break-glass access (here a dry run), and its warning is shown', async () => {
    const account = freshAccount();
    const run = await access(['ensure', '--target', account, '--role', 'AdministratorAccess', '--duration', '30m', '--reason', 'pager', '--break-glass', '--dry-run'], { as: 'olga' });
    assert.equal(run.code, 0, show(run));
    assert.match(run.stdout, /^WILL ACTIVATE +AdministratorAccess on .* for 30m$/m, show(run));
    assert.match(run.stdout, /warning: Break-glass access/, show(run));
  });

  it('dry runs say WILL ACTIVATE, WILL REQUEST and WILL EXTEND and change nothing', async () => {
    const account = freshAccount();
    const activate = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--duration', '10m', '--dry-run']);
    assert.equal(activate.code, 0, show(activate));
    assert.match(activate.stdout, new RegExp(`^WILL ACTIVATE +ReadOnlyAccess on AWS::Account::${account} for 10m$`, 'm'), show(activate));
    const request = await access(['ensure', '--target', account, '--role', 'AdministratorAccess', '--reason', 'fix', '--dry-run']);
    assert.equal(request.code, 0, show(request));
    assert.match(request.stdout, /^WILL REQUEST +AdministratorAccess/m, show(request));
    assert.match(request.stdout, /needs approval by a member of platform-admins/, 'who may review is shown');
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    // A dry run starts no grant.
    await assertNoGrantRun('alice', account, 'ReadOnlyAccess');
    await assertNoGrantRun('alice', account, 'AdministratorAccess');

    const activated = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--duration', '10m', '--wait']);
    assert.equal(activated.code, 0, show(activated));
    const extend = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--duration', '2h', '--dry-run']);
    assert.match(extend.stdout, /^WILL EXTEND +ReadOnlyAccess on .* until \S+ \(2h( |0m|\))/m, show(extend));
  });

  it('ensure --wait activates, prints where the grant stands, and is idempotent', async () => {
    const account = freshAccount();
    const first = await access(['ensure', '--target', target(account), '--role', 'ReadOnlyAccess', '--duration', '1h', '--reason', 'debug', '--wait']);
    assert.equal(first.code, 0, show(first));
    assert.match(first.stdout, /^ACTIVATED +ReadOnlyAccess on AWS::Account::\d{12}/m, show(first));
    assert.match(first.stdout, /^ACTIVE +ReadOnlyAccess on AWS::Account::\d{12} until \S+ \((59m\d+s|1h) left\)$/m, show(first));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 1);

    const again = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--duration', '1h', '--json']);
    assert.equal(again.code, 0, show(again));
    const body = JSON.parse(again.stdout);
    assert.equal(body.grants[0].change, 'none');
    assert.equal(body.grants[0].status, 'active');

    const list = await access(['grants', '--target', account]);
    assert.equal(list.code, 0, show(list));
    assert.match(list.stdout, /^STATUS +ROLE +TARGET +EXPIRES +ID$/m);
    assert.match(list.stdout, new RegExp(`^ACTIVE +ReadOnlyAccess +AWS::Account::${account} .* ${body.grants[0].id}$`, 'm'), show(list));

    const revoked = await access(['revoke', body.grants[0].id, '--reason', 'done']);
    assert.equal(revoked.code, 0, show(revoked));
    assert.match(revoked.stdout, /^REVOKED +ReadOnlyAccess/m, show(revoked));
    assert.equal(await assignmentsOf('alice', account, 'ReadOnlyAccess'), 0);
    const twice = await access(['revoke', body.grants[0].id, '--json']);
    assert.equal(twice.code, 1, show(twice));
    assert.equal(JSON.parse(twice.stdout).code, 'conflict');
  });

  it('grants lists a page at a time, newest first, and says how to get the next', async () => {
    const accounts = [freshAccount(), freshAccount()];
    for (const account of accounts) {
      const made = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--duration', '10m', '--reason', 'paging', '--wait']);
      assert.equal(made.code, 0, show(made));
    }
    const rowsOf = (out: string) => out.split('\n').filter((l) => /^[A-Z]+ +\S+ +AWS::Account::/.test(l));
    const first = await access(['grants', '--limit', '1']);
    assert.equal(first.code, 0, show(first));
    assert.equal(rowsOf(first.stdout).length, 1, show(first));
    assert.match(rowsOf(first.stdout)[0], new RegExp(`AWS::Account::${accounts[1]} `), 'the newest first');
    const cursor = /^\(more: --cursor (\S+)\)$/m.exec(first.stdout)?.[1];
    assert.ok(cursor, show(first));
    const second = await access(['grants', '--limit', '1', '--cursor', cursor]);
    assert.equal(second.code, 0, show(second));
    assert.match(rowsOf(second.stdout)[0], new RegExp(`AWS::Account::${accounts[0]} `), show(second));
  });

  it('a reviewed role: --wait times out with 3, a reviewer approves from the CLI, then it is active', async () => {
    const account = freshAccount();
    const requested = await access(['ensure', '--target', account, '--role', 'AdministratorAccess', '--reason', 'incident', '--wait', '--timeout', '2s', '--json']);
    assert.equal(requested.code, 3, show(requested));
    const [grant] = JSON.parse(requested.stdout).grants;
    assert.equal(grant.change, 'requested');
    assert.equal(grant.status, 'pending');

    // bob may not review it, so for him it does not exist (404: exit 1), exactly as an unknown id.
    const peer = await access(['review', grant.access_request_id, 'approve', '--json'], { as: 'bob' });
    assert.equal(peer.code, 1, show(peer));
    assert.equal(JSON.parse(peer.stdout).code, 'not_found', show(peer));
    const bad = await access(['review', grant.access_request_id, 'maybe'], { as: 'carol' });
    assert.equal(bad.code, 1, show(bad));

    const approved = await access(['review', grant.access_request_id, 'approve', '--comment', 'go'], { as: 'carol' });
    assert.equal(approved.code, 0, show(approved));
    assert.match(approved.stdout, /^APPROVED +AdministratorAccess on AWS::Account::\d{12} for alice: (provisioning|active)$/m, show(approved));
    assert.match(approved.stdout, /^ {2}1 of 1 approvals \(carol\)$/m, show(approved));

    const active = await access(['ensure', '--target', account, '--role', 'AdministratorAccess', '--reason', 'incident', '--wait']);
    assert.equal(active.code, 0, show(active));
    assert.match(active.stdout, /^(ACTIVE|PROVISIONING) +AdministratorAccess/m, show(active));
    assert.match(active.stdout, /^ACTIVE +AdministratorAccess .* until /m, show(active));
    assert.equal(await assignmentsOf('alice', account, 'AdministratorAccess'), 1);
    await access(['revoke', grant.id], { as: 'carol' });
  });

  it('requests lists what waits for a reviewer (a table), request shows one, review says what the decision did', async () => {
    const account = freshAccount();
    const { body } = await call('POST', '/v1/access/ensure', {
      body: { entitlements: [{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], justification: { reason: 'db migration' } },
    });
    const id = body.grants[0].access_request_id;
    const listed = await eventually('carol to see the request', async () => {
      const run = await access(['requests', '--status', 'pending'], { as: 'carol' });
      return run.stdout.includes(id) ? run : undefined;
    });
    assert.equal(listed.code, 0, show(listed));
    assert.match(listed.stdout, /^STATUS +REQUESTER +APPROVALS +CREATED +GRANTS +ID$/m, show(listed));
    assert.match(listed.stdout, new RegExp(`^PENDING +alice +0/1 +\\S+ +AdministratorAccess on ${account} +${id}$`, 'm'), show(listed));
    const bobs = await access(['requests', '--status', 'pending'], { as: 'bob' });
    assert.equal(bobs.code, 0, show(bobs));
    assert.ok(!bobs.stdout.includes(id), 'bob may not review it');
    const mine = await access(['requests', '--mine']);
    assert.ok(mine.stdout.includes(id), show(mine));
    const badStatus = await access(['requests', '--status', 'maybe'], { as: 'carol' });
    assert.equal(badStatus.code, 1, show(badStatus));

    const one = await access(['request', id], { as: 'carol' });
    assert.equal(one.code, 0, show(one));
    assert.match(one.stdout, new RegExp(`^PENDING +request ${id} by alice \\(alice@example.com\\)$`, 'm'), show(one));
    assert.match(one.stdout, /lapses at \S+ unless reviewed/, show(one));
    assert.match(one.stdout, /reason: db migration/, show(one));
    const hidden = await access(['request', id, '--json'], { as: 'bob' });
    assert.equal(hidden.code, 1, show(hidden));
    assert.equal(JSON.parse(hidden.stdout).code, 'not_found');

    const denied = await access(['review', id, 'deny', '--comment', 'use the runbook'], { as: 'carol' });
    assert.equal(denied.code, 0, show(denied));
    assert.match(denied.stdout, /^DENIED +AdministratorAccess on AWS::Account::\d{12} for alice: revoked$/m, show(denied));
    const after = await access(['request', id, '--json']);
    assert.equal(JSON.parse(after.stdout).status, 'denied', show(after));
  });

  it('ensure --wait ends with 3 when the request is denied while it waits', async () => {
    const account = freshAccount();
    const waiting = access(['ensure', '--target', account, '--role', 'AdministratorAccess', '--reason', 'curious', '--wait', '--poll-interval', '250']);
    const pending = await grantPending(account);
    const denied = await access(['review', pending.access_request_id!, 'deny', '--comment', 'no'], { as: 'carol' });
    assert.equal(denied.code, 0, show(denied));
    assert.match(denied.stdout, /^DENIED +AdministratorAccess on AWS::Account::\d{12} for alice: revoked$/m, show(denied));
    assert.match(denied.stdout, /denied by carol: no$/m, show(denied));
    const run = await waiting;
    assert.equal(run.code, 3, show(run));
    assert.match(run.stderr, /waiting for review/, show(run));
    assert.match(run.stdout, /^REVOKED +AdministratorAccess/m, show(run));
    assert.match(run.stdout, /Denied by carol: no/, show(run));
  });

  it('prints what others wrote without terminal control characters', async () => {
    const account = freshAccount();
    const { body } = await call('POST', '/v1/access/ensure', { body: { entitlements: [{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }] } });
    const id = body.grants[0].id;
    await grantReaching(id, 'active');
    const reason = 'done\x1b[31m red\r\x1b]0;owned\x07 \u009b2J\x7f end';
    const revoked = await call('POST', `/v1/access/grants/${id}/revoke`, { body: { reason } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));

    const shown = await access(['grants', id]);
    assert.equal(shown.code, 0, show(shown));
    assert.match(shown.stdout, /Revoked by alice: done red +end$/m, show(shown));
    assert.doesNotMatch(shown.stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/, JSON.stringify(shown.stdout));
    const json = await access(['grants', id, '--json']);
    assert.doesNotMatch(json.stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/, JSON.stringify(json.stdout));
    const revokedNote = JSON.parse(json.stdout).diagnostics.find((d: { code: string }) => d.code === 'revoked');
    assert.equal(revokedNote.message, `Revoked by alice: ${reason}`, '--json keeps the text as it is');
  });

  it('exit codes: 1 usage, 2 forbidden, 4 unauthenticated, 5 unavailable, 6 rate limited', async () => {
    const account = freshAccount();
    const usage = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--duration', 'soon']);
    assert.equal(usage.code, 1, show(usage));
    assert.match(usage.stderr, /expected a duration/);
    const missing = await access(['ensure', '--role', 'ReadOnlyAccess']);
    assert.equal(missing.code, 1, show(missing));
    for (const args of [['requests', '--limit', 'abc'], ['requests', '--limit', '0'], ['audit', '--limit', 'many'], ['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--wait', '--poll-interval', 'soon']]) {
      const refused = await access(args);
      assert.equal(refused.code, 1, `${args.join(' ')}: ${show(refused)}`);
      assert.match(refused.stderr, /expected a whole number/, args.join(' '));
    }
    const unexplained = await access(['ensure', '--target', account, '--role', 'AdministratorAccess', '--break-glass'], { as: 'olga' });
    assert.equal(unexplained.code, 1, show(unexplained));
    assert.match(unexplained.stderr, /--break-glass needs --reason/);
    assert.equal((await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}`, { as: 'olga' })).body.grants.length, 0, 'refused before the call');
    // A 400 says which fields failed and why, not only that the request is not valid.
    const invalid = await access(['ensure', '--target', account, '--role', 'ReadOnlyAccess', '--reason', 'x'.repeat(4001)]);
    assert.equal(invalid.code, 1, show(invalid));
    assert.match(invalid.stderr, /The request is not valid/);
    assert.match(invalid.stderr, /^ {2}justification\.reason: .+/m, show(invalid));

    const forbidden = await access(['ensure', '--target', account, '--role', 'AdministratorAccess']);
    assert.equal(forbidden.code, 2, show(forbidden));
    assert.match(forbidden.stderr, /AdministratorAccess needs a reason/, 'the policy notice is shown');
    const forbiddenJson = await access(['ensure', '--target', account, '--role', 'AdministratorAccess', '--json']);
    assert.equal(forbiddenJson.code, 2);
    assert.equal(JSON.parse(forbiddenJson.stdout).code, 'forbidden');

    const noToken = await access(['grants'], { env: { ACCESS_TOKEN: undefined } });
    assert.equal(noToken.code, 4, show(noToken));
    const badToken = await access(['grants', '--token', 'not.a.jwt']);
    assert.equal(badToken.code, 4, show(badToken));

    // Past the ensure rate: a code of its own, so a script can wait and try again.
    const rate = { as: 'wes' as const, env: { ACCESS_TENANT_ID: QUOTA_TENANT.id } };
    for (let i = 1; i <= QUOTA_TENANT.burst; i++) {
      const allowed = await access(['ensure', '--target', QUOTA_ACCOUNTS[0], '--role', 'ReadOnlyAccess', '--dry-run'], rate);
      assert.equal(allowed.code, 0, `call ${i}: ${show(allowed)}`);
    }
    const limited = await access(['ensure', '--target', QUOTA_ACCOUNTS[0], '--role', 'ReadOnlyAccess', '--dry-run'], rate);
    assert.equal(limited.code, 6, show(limited));
    assert.match(limited.stderr, /rate_limited/);
    assert.match(limited.stderr, /try again in \d+ s/i);

    const down = await access(['grants', '--url', 'http://127.0.0.1:9']);
    assert.equal(down.code, 5, show(down));
    assert.match(down.stderr, /Cannot reach/);
  });

  it('ensure --wait asks again when the API says when (429 with Retry-After), and ends with the grant active', async () => {
    const ned = { as: 'ned' as const, env: { ACCESS_TENANT_ID: NEIGHBOUR_TENANT.id } };
    // Ned's reads spent (his tenant allows 20 at once, then one in 10 s): the first check of
    // --wait is answered 429, and it must wait as told rather than give up.
    const spent = await Promise.all(Array.from({ length: NEIGHBOUR_TENANT.readBurst + 1 }, () => call('GET', '/v1/access/grants', { as: 'ned' })));
    assert.ok(spent.some((r) => r.status === 429), 'the reads were spent');
    // Two minutes: it ends on its own (Ned's reads are too slow to list it for a revoke).
    const waited = await access(['ensure', '--target', NEIGHBOUR_ACCOUNT, '--role', 'ReadOnlyAccess', '--duration', '2m', '--wait', '--poll-interval', '1', '--timeout', '60s'], ned);
    assert.equal(waited.code, 0, show(waited));
    assert.match(waited.stderr, /rate_limited: asking again in \d+ s/, show(waited));
    assert.match(waited.stdout, /^ACTIVE +ReadOnlyAccess/m, show(waited));
    assert.equal(await assignmentsOf('ned', NEIGHBOUR_ACCOUNT, 'ReadOnlyAccess'), 1);
  });
});

async function grantPending(account: string) {
  const grant = await eventually('the CLI to request the grant', async () => {
    const reply = await call('GET', `/v1/access/grants?target=${encodeURIComponent(target(account))}&status=pending`);
    return reply.body.grants?.[0];
  });
  return grantReaching(grant.id, 'pending');
}
