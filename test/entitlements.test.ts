// "What may I ask for?" (issue 37 §3): GET /v1/access/entitlements lists the (account, role) pairs
// the caller may request, with what an ensure of each would do, decided by the tenant's policies
// as ensure decides. Accounts come from the tenant's config, roles from the permission sets its
// latest reconciliation round read.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreatePermissionSetCommand } from '@aws-sdk/client-sso-admin';
import { access, BIN, show } from './support/cli';
import type { EntitlementView } from '../src/service/entitlements';
import {
  assertErrorShape,
  call,
  CATALOGUE_ACCOUNTS,
  CATALOGUE_OTHER_ACCOUNTS,
  CATALOGUE_OTHER_TENANT,
  CATALOGUE_TENANT,
  current,
  deleteReconcileSchedule,
  eventually,
  QUOTA_TENANT,
  reconciliationRound,
  type Reply,
  tokenFor,
} from './support/world';

type Page = { entitlements: EntitlementView[]; next_cursor: string | null };
type Who = 'alice' | 'carol' | 'mallory';

const { production, staging, development, undescribed } = CATALOGUE_ACCOUNTS;
const ROLES = ['AdministratorAccess', 'PowerUserAccess', 'ReadOnlyAccess', 'SecurityAudit'];

async function entitlements(who: Who, query = '', tenant = CATALOGUE_TENANT.id): Promise<Reply<Page>> {
  return call<Page>('GET', `/v1/access/entitlements${query}`, { token: await tokenFor(who, tenant), tenant });
}

/** Every pair the caller may request, page by page (`limit` a page), each page's answer checked. */
async function allPages(who: Who, filters: Record<string, string> = {}, limit = 100): Promise<EntitlementView[]> {
  const all: EntitlementView[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ ...filters, limit: String(limit), ...(cursor ? { cursor } : {}) });
    const reply = await entitlements(who, `?${query}`);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.ok(reply.body.entitlements.length <= limit);
    for (const e of reply.body.entitlements) assert.ok(!all.some((seen) => pairOf(seen) === pairOf(e)), `${pairOf(e)} listed twice`);
    all.push(...reply.body.entitlements);
    cursor = reply.body.next_cursor;
  } while (cursor);
  return all;
}

const pairOf = (e: EntitlementView) => `${e.account.id} ${e.role}`;
const find = (list: EntitlementView[], account: string, role: string) => list.find((e) => e.account.id === account && e.role === role);

describe('GET /v1/access/entitlements: what may I ask for', function () {
  this.timeout(120_000);

  before(async () => {
    // A permission set of the instance beyond the seeded three: roles are what the instance has.
    const { sso, stack } = current();
    await sso.send(
      new CreatePermissionSetCommand({ InstanceArn: stack.instanceArnOf(CATALOGUE_TENANT.id), Name: 'SecurityAudit', Description: "Reads every account's configuration" }),
    );
    const [report] = await Promise.all([reconciliationRound(CATALOGUE_TENANT.id), reconciliationRound(CATALOGUE_OTHER_TENANT.id)]);
    assert.deepEqual(report.permissionSets?.map((s) => s.name), ROLES);
    // The API reads the round's report again within seconds when it had found none.
    await eventually('the API to know the permission sets', async () => ((await entitlements('alice')).body.entitlements?.length ? true : undefined));
  });
  after(async () => {
    await deleteReconcileSchedule(CATALOGUE_TENANT.id);
    await deleteReconcileSchedule(CATALOGUE_OTHER_TENANT.id);
  });

  it("lists a requester's pairs with what an ensure would do: activate or request, durations, approvals, and the account", async () => {
    const list = await allPages('alice');
    // Engineering may ask for every role of the instance on every listed account (policies/).
    assert.deepEqual(list.map(pairOf), Object.values(CATALOGUE_ACCOUNTS).flatMap((a) => ROLES.map((r) => `${a.id} ${r}`)));

    const readOnlyProd = find(list, production.id, 'ReadOnlyAccess')!;
    assert.deepEqual(readOnlyProd, {
      target: `AWS::Account::${production.id}`,
      role: 'ReadOnlyAccess',
      role_description: 'ReadOnlyAccess (local stack)',
      account: { id: production.id, name: 'payments-prod', environment: 'production', tags: {}, ou_path: [] },
      action: 'activate',
      approvals_required: 0,
      default_duration_seconds: 3600,
      // production-max-1h
      max_duration_seconds: 3600,
      requires: [],
    });
    // Not production: the tenant's maximum (12 hours).
    assert.equal(find(list, staging.id, 'ReadOnlyAccess')!.max_duration_seconds, 43_200);
    // AdministratorAccess is reviewed: by two on production (@approvals("2")), one elsewhere.
    assert.deepEqual(
      [production, staging].map((a) => find(list, a.id, 'AdministratorAccess')).map((e) => [e!.action, e!.approvals_required, e!.max_duration_seconds]),
      [['request', 2, 3600], ['request', 1, 43_200]],
    );
    // What the justification must hold: AdministratorAccess a reason, PowerUserAccess a ticket.
    assert.deepEqual(find(list, staging.id, 'AdministratorAccess')!.requires, ['reason']);
    assert.deepEqual(find(list, staging.id, 'PowerUserAccess')!.requires, ['ticket_attachment']);
    // PowerUserAccess activates at once (with its ticket); SecurityAudit waits for the security team.
    assert.equal(find(list, development.id, 'PowerUserAccess')!.action, 'activate');
    const audit = find(list, development.id, 'SecurityAudit')!;
    assert.deepEqual([audit.action, audit.approvals_required, audit.role_description], ['request', 1, "Reads every account's configuration"]);
    // An account listed without an environment or a name is `unknown` to the policies, and has no name.
    assert.deepEqual(find(list, undescribed.id, 'ReadOnlyAccess')!.account, { id: undescribed.id, name: null, environment: 'unknown', tags: {}, ou_path: [] });
  });

  it('answers as ensure decides: each listed pair ensures (dry run) as listed at its maximum, and is refused beyond it', async () => {
    const token = await tokenFor('alice', CATALOGUE_TENANT.id);
    const dryRun = (e: EntitlementView, duration_seconds: number, justification: object = { reason: 'checking the list', attachments: ['OPS-1'] }) =>
      call('POST', '/v1/access/ensure', {
        token,
        tenant: CATALOGUE_TENANT.id,
        body: { entitlements: [{ target: e.target, role: e.role, duration_seconds }], justification, dry_run: true },
      });
    const listed = await allPages('alice', { account: production.id });
    assert.deepEqual(listed.map((e) => e.role), ROLES);
    for (const e of listed) {
      const atMax = await dryRun(e, e.max_duration_seconds);
      assert.equal(atMax.status, 200, `${pairOf(e)}: ${JSON.stringify(atMax.body)}`);
      assert.equal(atMax.body.grants[0].change, e.action === 'activate' ? 'activated' : 'requested', pairOf(e));
      const beyond = await dryRun(e, e.max_duration_seconds + 1);
      assert.equal(beyond.status, 403, `${pairOf(e)} beyond its maximum: ${JSON.stringify(beyond.body)}`);
      // Without a reason, or without a ticket: refused exactly where the listing says it is needed.
      const noReason = await dryRun(e, e.default_duration_seconds, { attachments: ['OPS-1'] });
      assert.equal(noReason.status, e.requires.includes('reason') ? 403 : 200, `${pairOf(e)} without a reason: ${JSON.stringify(noReason.body)}`);
      const noTicket = await dryRun(e, e.default_duration_seconds, { reason: 'checking the list' });
      assert.equal(noTicket.status, e.requires.includes('ticket_attachment') ? 403 : 200, `${pairOf(e)} without a ticket: ${JSON.stringify(noTicket.body)}`);
    }
  });

  it('shows a reviewer only what they may request themselves, and leaves out a pair policy forbids them', async () => {
    const carol = await allPages('carol');
    // platform-admins review AdministratorAccess but do not request it: only ReadOnlyAccess (anyone's) is theirs.
    assert.deepEqual([...new Set(carol.map((e) => e.role))], ['ReadOnlyAccess']);
    assert.equal(carol.length, Object.keys(CATALOGUE_ACCOUNTS).length);
    assert.equal(find(carol, production.id, 'AdministratorAccess'), undefined);
    // And ensure agrees that the pair left out is forbidden.
    const refused = await call('POST', '/v1/access/ensure', {
      token: await tokenFor('carol', CATALOGUE_TENANT.id),
      tenant: CATALOGUE_TENANT.id,
      body: { entitlements: [{ target: `AWS::Account::${production.id}`, role: 'AdministratorAccess' }], justification: { reason: 'rotate', attachments: ['OPS-1'] }, dry_run: true },
    });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    // Nobody's groups: still ReadOnlyAccess, nothing else.
    assert.deepEqual([...new Set((await allPages('mallory')).map((e) => e.role))], ['ReadOnlyAccess']);
  });

  it('filters by account (an id or a target), role, environment and text in the names', async () => {
    const pairs = async (filters: Record<string, string>) => (await allPages('alice', filters)).map(pairOf);
    const all = await pairs({});
    const where = (keep: (e: string) => boolean) => all.filter(keep);
    assert.deepEqual(await pairs({ account: staging.id }), where((p) => p.startsWith(staging.id)));
    assert.deepEqual(await pairs({ account: `AWS::Account::${staging.id}` }), where((p) => p.startsWith(staging.id)));
    assert.deepEqual(await pairs({ role: 'SecurityAudit' }), where((p) => p.endsWith(' SecurityAudit')));
    assert.deepEqual(await pairs({ environment: 'production' }), where((p) => p.startsWith(production.id)));
    assert.deepEqual(await pairs({ environment: 'unknown' }), where((p) => p.startsWith(undescribed.id)));
    // Text: the account's name (any case)...
    assert.deepEqual(await pairs({ q: 'PAYMENTS' }), where((p) => p.startsWith(production.id) || p.startsWith(staging.id)));
    assert.deepEqual(await pairs({ q: 'sandbox' }), where((p) => p.startsWith(development.id)));
    // ...or the role's name; and filters together.
    assert.deepEqual(await pairs({ q: 'readonly', environment: 'staging' }), [`${staging.id} ReadOnlyAccess`]);
    assert.deepEqual(await pairs({ q: 'no such thing' }), []);
    assert.deepEqual(await pairs({ role: 'NoSuchRole' }), []);
  });

  it('pages through every pair once, and refuses a cursor sent with other filters', async () => {
    const whole = (await allPages('alice')).map(pairOf);
    for (const limit of [1, 3, 16]) assert.deepEqual((await allPages('alice', {}, limit)).map(pairOf), whole, `limit ${limit}`);
    const first = await entitlements('alice', '?limit=5');
    assert.equal(first.body.entitlements.length, 5);
    assert.ok(first.body.next_cursor);
    const elsewhere = await entitlements('alice', `?limit=5&role=ReadOnlyAccess&cursor=${first.body.next_cursor}`);
    assert.equal(elsewhere.status, 400);
    assertErrorShape(elsewhere, 'invalid_request');
    // The last page says so.
    const last = await entitlements('alice', `?limit=${whole.length}`);
    assert.equal(last.body.next_cursor, null);
  });

  it('refuses a bad query with 400 in the contract shape, naming the field', async () => {
    for (const [query, field] of [
      ['?limit=101', 'limit'],
      ['?limit=0', 'limit'],
      ['?account=12345', 'account'],
      ['?role=not%20a%20role', 'role'],
      ['?environment=', 'environment'],
      [`?q=${'x'.repeat(101)}`, 'q'],
      ['?cursor=forged', 'cursor'],
      ['?colour=blue', ''],
    ]) {
      const reply = await entitlements('alice', query);
      assert.equal(reply.status, 400, `${query}: ${JSON.stringify(reply.body)}`);
      assertErrorShape(reply, 'invalid_request');
      const paths = (reply.body as any).details.issues.map((i: { path: string[] }) => i.path.join('.'));
      assert.ok(field === '' ? paths.length > 0 : paths.includes(field), `${query}: ${JSON.stringify(paths)}`);
    }
  });

  it("answers another tenant's token from that tenant's accounts, roles and policies, and refuses it with this tenant's id", async () => {
    const other = await entitlements('alice', '', CATALOGUE_OTHER_TENANT.id);
    assert.equal(other.status, 200, JSON.stringify(other.body));
    // The second test tenant's policies: everything at once but AdministratorAccess (reviewed), and
    // PowerUserAccess beyond 10 minutes (its default, an hour, is reviewed).
    const { staging: otherStaging, vault } = CATALOGUE_OTHER_ACCOUNTS;
    assert.deepEqual(
      other.body.entitlements.map((e) => [e.account.id, e.account.name, e.role, e.action]),
      [
        [otherStaging, 'other-staging', 'AdministratorAccess', 'request'],
        [otherStaging, 'other-staging', 'PowerUserAccess', 'request'],
        [otherStaging, 'other-staging', 'ReadOnlyAccess', 'activate'],
        // A policy names the vault account: it is decided on its own, not as the other staging account.
        [vault, 'vault', 'AdministratorAccess', 'request'],
        [vault, 'vault', 'PowerUserAccess', 'request'],
      ],
    );
    const mismatch = await call('GET', '/v1/access/entitlements', { token: await tokenFor('alice', CATALOGUE_OTHER_TENANT.id), tenant: CATALOGUE_TENANT.id });
    assert.equal(mismatch.status, 403);
    assertErrorShape(mismatch, 'tenant_mismatch');
  });

  it('is rate limited as the other reads are (429 with Retry-After)', async () => {
    // A principal of its own in the tenant with the small read bucket: 20 at once, then one in 2 s.
    const token = await current().stack.issueToken(QUOTA_TENANT.id, { sub: 'ellen-entitlements', email: 'ellen@quota.example', groups: [] });
    const replies: Reply[] = [];
    for (let i = 0; i < QUOTA_TENANT.readBurst + 5; i++) replies.push(await call('GET', '/v1/access/entitlements', { token, tenant: QUOTA_TENANT.id }));
    const limited = replies.find((r) => r.status === 429);
    assert.ok(limited, JSON.stringify(replies.map((r) => r.status)));
    assertErrorShape(limited, 'rate_limited');
    assert.ok(Number(limited.headers?.get('retry-after')) >= 1);
    assert.equal(replies[0].status, 200);
  });

  describe('from the CLI', () => {
    const as = async (who: Who) => ({ env: { ACCESS_TENANT_ID: CATALOGUE_TENANT.id, ACCESS_TOKEN: await tokenFor(who, CATALOGUE_TENANT.id) } });

    it('access entitlements (or list) prints a page: account, name, environment, role, what ensure will do and the durations', async () => {
      const run = await access(['entitlements', '--role', 'AdministratorAccess'], await as('alice'));
      assert.equal(run.code, 0, show(run));
      assert.match(run.stdout, /^ACCOUNT +NAME +ENVIRONMENT +ROLE +ENSURE WILL +DURATION +NEEDS$/m, show(run));
      assert.match(run.stdout, new RegExp(`^${production.id} +payments-prod +production +AdministratorAccess +REQUEST \\(2 approvals\\) +1h \\(max 1h\\) +--reason$`, 'm'), show(run));
      assert.match(run.stdout, new RegExp(`^${staging.id} +payments-staging +staging +AdministratorAccess +REQUEST +1h \\(max 12h\\) +--reason$`, 'm'), show(run));
      const list = await access(['list', '--search', 'sandbox', '--limit', '2'], await as('carol'));
      assert.equal(list.code, 0, show(list));
      assert.match(list.stdout, new RegExp(`^${development.id} +Sandbox +development +ReadOnlyAccess +ACTIVATE +1h \\(max 12h\\) +-$`, 'm'), show(list));
      assert.doesNotMatch(list.stdout, /AdministratorAccess/);
      const json = await access(['list', '--json', '--account', staging.id], await as('alice'));
      assert.deepEqual(JSON.parse(json.stdout).entitlements.map((e: EntitlementView) => e.role), ROLES);
    });

    it('access completion bash completes ensure --target with the accounts, and --role with the roles of that account, from the API', async () => {
      const script = await access(['completion', 'bash']);
      assert.equal(script.code, 0, show(script));
      // A shell as a user has it: `access` on the PATH, the script evaluated, then <TAB> after a flag.
      const bin = mkdtempSync(path.join(os.tmpdir(), 'access-completion-'));
      writeFileSync(path.join(bin, 'access'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
      chmodSync(path.join(bin, 'access'), 0o755);
      const { env } = await as('alice');
      const complete = (words: string[]) =>
        new Promise<string[]>((resolve, reject) => {
          const line = `eval "$(access completion bash)"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _access_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
          execFile('bash', ['-c', line], { env: { ...env, PATH: `${bin}${path.delimiter}${process.env.PATH}`, ACCESS_URL: current().baseUrl } }, (err, stdout, stderr) =>
            err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout.split('\n').filter(Boolean).sort()),
          );
        });
      const accounts = Object.values(CATALOGUE_ACCOUNTS).map((a) => a.id).sort();
      assert.deepEqual(await complete(['access', 'ensure', '--target', '']), accounts);
      assert.deepEqual(await complete(['access', 'ensure', '--target', '7000000000']), accounts);
      assert.deepEqual(await complete(['access', 'ensure', '--target', production.id, '--role', '']), ROLES);
      assert.deepEqual(await complete(['access', 'ensure', '--target', production.id, '--role', 'Read']), ['ReadOnlyAccess']);
      assert.deepEqual(await complete(['access', 'ens']), ['ensure']);
      // Another caller is offered what they may ask for: a reviewer, ReadOnlyAccess only.
      const carol = await as('carol');
      Object.assign(env, carol.env);
      assert.deepEqual(await complete(['access', 'ensure', '--target', production.id, '--role', '']), ['ReadOnlyAccess']);

      const zsh = await access(['completion', 'zsh']);
      assert.equal(zsh.code, 0, show(zsh));
      assert.match(zsh.stdout, /^#compdef access$/m);
      assert.match(zsh.stdout, /access __complete roles/);
    });
  });
});
