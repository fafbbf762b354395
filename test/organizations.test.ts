// Accounts from AWS Organizations (issue 39 §1): a tenant says where its accounts are
// (`organization.roots_or_ous`), the worker reads them on a Schedule, and the API decides on the
// latest read: OUs nested to any depth, names, tags, a policy on an OU, an account moved, closed or
// created seen at the next read, and an account two tenants would own refused. The organisation is
// moto's (test/support/organization.ts).
import assert from 'node:assert/strict';
import { CloseAccountCommand, MoveAccountCommand, TagResourceCommand, UntagResourceCommand, UpdateOrganizationalUnitCommand } from '@aws-sdk/client-organizations';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../src/activities';
import { loadConfig } from '../src/config';
import type { OrganizationReport } from '../src/domain/accounts';
import { unpackOrganization } from '../src/latest-run';
import { organizationScheduleId } from '../src/schedules';
import type { GrantView } from '../src/domain/grant';
import type { EntitlementView } from '../src/service/entitlements';
import { accountNamed, organization, organizationsClient } from './support/organization';
import { grantEvents } from './support/audit';
import { assignmentsOf, call, current, deleteReconcileSchedule, lastOrganizationRead, organizationRead, type EnsureReply, eventually, ORG_TENANT, reconciliationRound, recordRun, target, tokenFor } from './support/world';

/** Accounts a test made in the tenant's OUs: closed at the end, so later suites see the organisation as seeded. */
const made: string[] = [];
async function madeAccount(...args: Parameters<typeof accountNamed>): Promise<string> {
  const id = await accountNamed(...args);
  made.push(id);
  return id;
}

/** What a dry-run ensure of ReadOnlyAccess on the account would do for alice (engineering) in ORG_TENANT: its change, or the refusal. */
async function wouldDo(account: string): Promise<string> {
  const reply = await call<EnsureReply>('POST', '/v1/access/ensure', {
    token: await tokenFor('alice', ORG_TENANT.id),
    tenant: ORG_TENANT.id,
    body: { entitlements: [{ target: target(account), role: 'ReadOnlyAccess' }], justification: { reason: 'organisation test' }, dry_run: true },
  });
  if (reply.status === 200) return reply.body.grants[0].change ?? 'none';
  return `${reply.status} ${reply.body.code}: ${(reply.body.notices ?? []).join(' ')}`;
}

/** Polls until the API decides `account` as `expected` (it looks for a newer read every second in tests). */
async function decidedAs(account: string, expected: RegExp): Promise<void> {
  let last = '';
  await eventually(`${account} to be decided as ${expected}`, async () => (expected.test((last = await wouldDo(account))) ? true : undefined), 15_000).catch((err: Error) => {
    throw new Error(`${err.message}; last: ${last}`);
  });
}

async function catalogue(): Promise<EntitlementView[]> {
  const reply = await call<{ entitlements: EntitlementView[] }>('GET', '/v1/access/entitlements?limit=100', { token: await tokenFor('alice', ORG_TENANT.id), tenant: ORG_TENANT.id });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body.entitlements;
}

describe('accounts from AWS Organizations', function () {
  this.timeout(180_000);
  let first: OrganizationReport;

  before(async () => {
    // The roles come from a reconciliation round; creating its Schedules makes the organisation's too.
    await reconciliationRound(ORG_TENANT.id);
    first = await organizationRead();
  });
  after(async () => {
    const aws = organizationsClient(current().stack.awsEndpoint);
    for (const id of made) await aws.send(new CloseAccountCommand({ AccountId: id })).catch(() => undefined);
    aws.destroy();
    await deleteReconcileSchedule(ORG_TENANT.id);
    await current().temporal.schedule.getHandle(organizationScheduleId(ORG_TENANT.id)).delete();
  });

  it('reads every active account under its OUs, nested to any depth, less what it excludes, with names, tags and the OU path', () => {
    const { rootId, ous, accounts } = organization();
    assert.deepEqual(Object.keys(first.accounts).sort(), [accounts.paymentsProd, accounts.vault, accounts.sandbox].sort());
    assert.deepEqual(first.accounts[accounts.paymentsProd], {
      name: 'payments-prod',
      status: 'ACTIVE',
      tags: { env: 'production', team: 'payments' },
      ou_path: [rootId, ous.workloads, ous.prod, ous.payments],
      tags_read_at: first.accounts[accounts.paymentsProd].tags_read_at,
    });
    assert.ok(Date.parse(first.accounts[accounts.paymentsProd].tags_read_at) <= Date.parse(first.readAt));
    assert.deepEqual(first.accounts[accounts.sandbox].ou_path, [rootId, ous.workloads, ous.dev]);
    assert.equal(first.ous[ous.payments], 'payments');
    assert.equal(first.ous[ous.workloads], 'workloads');
    assert.ok(first.calls > 0);
  });

  it('records the history of a read (RECORD_HISTORIES=1), for the replay test', async () => {
    await recordRun('organization-read', `WorkflowId = '${lastOrganizationRead}'`);
  });

  it('decides an ensure by the OU an account is in, however deep, and refuses an account outside the OUs or excluded', async () => {
    const { accounts } = organization();
    // prod-reviewed forbids activate under prod: payments-prod, two levels down, needs a reviewer.
    await decidedAs(accounts.paymentsProd, /^requested$/);
    assert.equal(await wouldDo(accounts.sandbox), 'activated');
    assert.match(await wouldDo(accounts.vault), /^403 forbidden: Restricted accounts are not offered\.$/);
    for (const outside of [accounts.elsewhere, accounts.excluded, accounts.inAttic, '999999999999']) {
      assert.match(await wouldDo(outside), /^403 forbidden: AWS::Account::\d{12} is not one of this tenant's accounts/, outside);
    }
  });

  it('lists the organisation\'s accounts in the catalogue with their name, tags, environment (from the tag) and OU path, decided per OU', async () => {
    const { rootId, ous, accounts } = organization();
    const list = await eventually('the catalogue to list the organisation', async () => {
      const found = await catalogue();
      return found.some((e) => e.account.id === accounts.paymentsProd) ? found : undefined;
    });
    // Only ReadOnlyAccess is permitted, and never on the restricted account.
    assert.deepEqual(list.map((e) => `${e.account.id} ${e.role} ${e.action}`).sort(), [
      `${accounts.paymentsProd} ReadOnlyAccess request`,
      `${accounts.sandbox} ReadOnlyAccess activate`,
    ].sort());
    const prod = list.find((e) => e.account.id === accounts.paymentsProd)!;
    assert.deepEqual(prod.account, {
      id: accounts.paymentsProd,
      name: 'payments-prod',
      environment: 'production',
      tags: { env: 'production', team: 'payments' },
      ou_path: [rootId, ous.workloads, ous.prod, ous.payments],
    });
  });

  it('sees an account moved, closed or created, and an OU renamed, at the next read', async () => {
    const { rootId, ous } = organization();
    const client = organizationsClient(current().stack.awsEndpoint);
    try {
      const mover = await madeAccount(client, rootId, ous.dev, `mover-${process.pid}`);
      const closer = await madeAccount(client, rootId, ous.dev, `closer-${process.pid}`);
      await organizationRead();
      await decidedAs(mover, /^activated$/);
      await decidedAs(closer, /^activated$/);

      await client.send(new MoveAccountCommand({ AccountId: mover, SourceParentId: ous.dev, DestinationParentId: ous.payments }));
      await client.send(new CloseAccountCommand({ AccountId: closer }));
      const newcomer = await madeAccount(client, rootId, ous.prod, `newcomer-${process.pid}`);
      await client.send(new UpdateOrganizationalUnitCommand({ OrganizationalUnitId: ous.dev, Name: `dev-${process.pid}` }));
      // Decided on the previous read until the next one: nothing changes before it.
      assert.equal(await wouldDo(mover), 'activated');

      const next = await organizationRead();
      assert.deepEqual(next.accounts[mover]?.ou_path, [rootId, ous.workloads, ous.prod, ous.payments]);
      assert.equal(next.accounts[closer], undefined, 'a closed account is no longer one of the tenant\'s');
      assert.equal(next.accounts[newcomer]?.name, `newcomer-${process.pid}`);
      assert.equal(next.ous[ous.dev], `dev-${process.pid}`);
      await decidedAs(mover, /^requested$/);
      await decidedAs(closer, /^403 forbidden: AWS::Account::\d{12} is not one of this tenant's accounts/);
      await decidedAs(newcomer, /^requested$/);
    } finally {
      await client.send(new UpdateOrganizationalUnitCommand({ OrganizationalUnitId: ous.dev, Name: 'dev' }));
      client.destroy();
    }
  });

  it('refuses, with one line naming both tenants and the account, an account another tenant on the instance lists or holds in its OUs', async () => {
    const { accounts, ous } = organization();
    const config = loadConfig(current().stack.configPath);
    const tenant = config.tenants.find((t) => t.id === ORG_TENANT.id)!;
    const neighbour = { ...tenant, id: '0a9a0000-0000-4000-8000-00000000a0aa', name: 'neighbour-of-organization', organization: undefined };
    const refused = (account: string) => (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, 'AccountOverlap');
      assert.equal(err.nonRetryable, true);
      assert.doesNotMatch(err.message, /\n/);
      assert.match(err.message, new RegExp(`^Account ${account} \\(.*\\) is in the organization of tenant "organization" .* tenant "neighbour-of-organization" .*: an account belongs to one tenant per instance$`));
      return true;
    };
    // Listed by the neighbour...
    const listing = createActivities({ tenants: [tenant, { ...neighbour, accounts_only: true, accounts: { [accounts.sandbox]: { environment: 'development' } } }] });
    await assert.rejects(listing.readOrganization(ORG_TENANT.id), refused(accounts.sandbox));
    // ...or in an OU of the neighbour's, nested inside this tenant's.
    const nested = createActivities({ tenants: [tenant, { ...neighbour, accounts: {}, organization: { roots_or_ous: [ous.payments], exclude: [], tag_reads_per_refresh: 500 } }] });
    // (the first account found under payments: payments-prod, or one an earlier test moved there)
    await assert.rejects(nested.readOrganization(ORG_TENANT.id), refused('\\d{12}'));
  });

  it('asks for the tags of new accounts at once, and of known ones only within its budget (tag_reads_per_refresh), oldest first', async () => {
    const { rootId, ous, accounts } = organization();
    const aws = organizationsClient(current().stack.awsEndpoint);
    const config = loadConfig(current().stack.configPath);
    const tenant = config.tenants.find((t) => t.id === ORG_TENANT.id)!;
    // The worker's activities with this tenant's budget set, reading on from the latest read.
    const readWith = async (budget: number) =>
      unpackOrganization(await createActivities({ tenants: [{ ...tenant, organization: { ...tenant.organization!, tag_reads_per_refresh: budget } }] }, { client: current().temporal }).readOrganization(ORG_TENANT.id));
    try {
      const latest = await organizationRead();
      await aws.send(new TagResourceCommand({ ResourceId: accounts.sandbox, Tags: [{ Key: 'team', Value: `retagged-${process.pid}` }] }));
      const newcomer = await madeAccount(aws, rootId, ous.dev, `tagged-newcomer-${process.pid}`, { env: 'development', team: 'new' });

      const none = await readWith(0);
      assert.deepEqual(none.accounts[accounts.sandbox].tags, latest.accounts[accounts.sandbox].tags, 'a known account keeps the tags last read');
      assert.equal(none.accounts[accounts.sandbox].tags_read_at, latest.accounts[accounts.sandbox].tags_read_at);
      assert.deepEqual(none.accounts[newcomer].tags, { env: 'development', team: 'new' }, "a new account's tags are asked for at once");
      // Each known account costs one call (ListTagsForResource) only when its turn comes.
      const known = Object.keys(latest.accounts).length;
      const all = await readWith(known + 1);
      assert.equal(all.calls - none.calls, known, 'one ListTagsForResource per known account');
      assert.equal(all.accounts[accounts.sandbox].tags.team, `retagged-${process.pid}`);
    } finally {
      await aws.send(new UntagResourceCommand({ ResourceId: accounts.sandbox, TagKeys: ['team'] }));
      aws.destroy();
    }
  });

  it("ends an open grant on an account that left the tenant's OUs, with a diagnostic and an audit event, and grants it no more", async () => {
    const { rootId, ous } = organization();
    const aws = organizationsClient(current().stack.awsEndpoint);
    try {
      const leaver = await madeAccount(aws, rootId, ous.dev, `leaver-${process.pid}`);
      await organizationRead();
      await decidedAs(leaver, /^activated$/);
      const alice = await tokenFor('alice', ORG_TENANT.id);
      const granted = await call<EnsureReply>('POST', '/v1/access/ensure', {
        token: alice,
        tenant: ORG_TENANT.id,
        body: { entitlements: [{ target: target(leaver), role: 'ReadOnlyAccess', duration_seconds: 3600 }], justification: { reason: 'leaver test' } },
      });
      assert.equal(granted.status, 200, JSON.stringify(granted.body));
      const grantId = granted.body.grants[0].id;
      await eventually('the assignment', async () => ((await assignmentsOf('alice', leaver, 'ReadOnlyAccess', ORG_TENANT.id)) === 1 ? true : undefined));

      await aws.send(new MoveAccountCommand({ AccountId: leaver, SourceParentId: ous.dev, DestinationParentId: ous.elsewhere }));
      const next = await organizationRead();
      assert.equal(next.accounts[leaver], undefined);
      assert.ok((next.grantsEnded ?? 0) >= 1, `grants ended: ${next.grantsEnded}`);

      const ended = await eventually('the grant to end', async () => {
        const reply = await call<GrantView>('GET', `/v1/access/grants/${grantId}`, { token: alice, tenant: ORG_TENANT.id });
        return reply.status === 200 && reply.body.status === 'revoked' ? reply.body : undefined;
      });
      const why = ended.diagnostics.find((d) => d.code === 'revoked');
      assert.match(why?.message ?? '', new RegExp(`account ${leaver} is no longer in this tenant's organization`));
      assert.equal(await assignmentsOf('alice', leaver, 'ReadOnlyAccess', ORG_TENANT.id), 0);
      const [revoked] = (await grantEvents(grantId, ['revoked'], ORG_TENANT.id)).filter((e) => e.event.event === 'revoked');
      assert.deepEqual(revoked.event.actor, { type: 'operator', id: 'organization' });
      assert.match(revoked.event.details.reason, /no longer in this tenant's organization/);
      await decidedAs(leaver, /^403 forbidden: AWS::Account::\d{12} is not one of this tenant's accounts/);
    } finally {
      aws.destroy();
    }
  });
});
