// The real stack the end-to-end tests run on: Temporal dev server, moto, an in-process worker and
// API. Started once for the whole run by mocha's root hooks (see .mocharc.yml).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateAccountAssignmentCommand, DeleteAccountAssignmentCommand, ListAccountAssignmentsCommand, ListPermissionSetsCommand, DescribePermissionSetCommand, SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { GetUserIdCommand, IdentitystoreClient } from '@aws-sdk/client-identitystore';
import { Client, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { env, loadConfig } from '../../src/config';
import { ensureReconcileSchedules, organizationScheduleId, reconcileScheduleId } from '../../src/schedules';
import { unpackOrganization } from '../../src/latest-run';
import type { OrganizationReport } from '../../src/domain/accounts';
import type { organizationWorkflow } from '../../src/workflows/organization';
import type { ReconcileReport, reconcileWorkflow } from '../../src/workflows/reconcile';
import { type EnsureRequest, grantWorkflowId, type GrantView } from '../../src/domain/grant';
import type { WorkerMetrics } from '../../src/metrics';
import { FaultProxy } from './fault-proxy';
import { OutageProxy } from './outage-proxy';
import { awsClientConfig, repoRoot, type Stack, startLocalServices, startStack } from '../../scripts/stack';
import { startWebhookReceiver, type WebhookReceiver } from './webhooks';
import { startFakeJira } from './jira';
import type { FakeOncallServer } from './oncall';
import { startFakeOpsgenie } from './opsgenie';
import { startFakePagerDuty } from './pagerduty';
import { startFakeServiceNow } from './servicenow';
import { type FakeSlack, startFakeSlack } from './slack';
import type { FakeTicketServer } from './tickets';
import { organization, seedOrganization } from './organization';
import { groups, groupsConfig, seedGroups } from './groups';

export const TENANT = { id: '2489e9ad-2ee2-8e00-8ec9-32d5f69181c0', name: 'example' };
/** Its own policies (everything auto-activates) and a 3-second review window. */
export const OTHER_TENANT = { id: '7d1f0c4e-5a6b-4c3d-9e8f-0a1b2c3d4e5f', name: 'other' };
/**
 * Everything auto-activates; its AWS calls go through the fault proxy (`current().faults`), its
 * audit events through the outage proxy (`current().auditOutage`).
 */
export const FAULTS_TENANT = { id: 'f0a17e57-0000-4000-8000-00000000fa17', name: 'faults' };
/**
 * Small per-principal limits (3 open grants; 5 ensure calls at once, then 1 a minute), and its
 * policies forbid an account whose environment is unknown (QUOTA_ACCOUNTS are listed).
 */
export const QUOTA_TENANT = { id: '9a0e7a11-0000-4000-8000-00000000a0a1', name: 'quota', maxOpen: 3, maxScheduled: 1, ratePerMinute: 1, burst: 5, readsPerMinute: 30, readBurst: 20 };
export const QUOTA_ACCOUNTS = ['400000000001', '400000000002', '400000000003', '400000000004'];
/** Listed for QUOTA_TENANT, but without an environment. */
export const QUOTA_UNDESCRIBED_ACCOUNT = '400000000009';
/**
 * Only its listed accounts (LISTED_ACCOUNT) may be targets (`accounts_only`). It shares moto's
 * own IAM Identity Center instance with NEIGHBOUR_TENANT; every other tenant has one of its own.
 */
export const LISTED_TENANT = { id: '9a0e7a11-0000-4000-8000-00000000a0a2', name: 'listed' };
export const LISTED_ACCOUNT = '500000000001';
/**
 * On LISTED_TENANT's instance, with an account of its own (`accounts_only`): moto's own account id,
 * the one moto lists where a permission set is provisioned. Slow reads: 20 at once, then one in 10 s.
 */
export const NEIGHBOUR_TENANT = { id: '9a0e7a11-0000-4000-8000-00000000a0a3', name: 'neighbour', readsPerMinute: 6, readBurst: 20 };
export const NEIGHBOUR_ACCOUNT = '123456789012';
/**
 * The default policies, and a Slack app (`notifications.slack`) against the fake Slack
 * (`current().slack`): its review_requested messages carry Approve and Deny buttons.
 */
/**
 * Ends sessions with grants (`aws.revoke_sessions`), its AWS calls through a fault proxy of its
 * own (`current().sessionsAws`). On moto's own instance, the one moto provisions permission sets
 * on, so with accounts of its own. Everything but AdministratorAccess auto-activates
 * (test/fixtures/other-tenant-policies).
 */
export const SESSIONS_TENANT = { id: '5e551075-0000-4000-8000-000000005e55', name: 'sessions' };
export const SESSIONS_ACCOUNTS = Array.from({ length: 40 }, (_, i) => String(600000000001 + i));

/**
 * Schemathesis' (test/schemathesis.test.ts): anybody may ask for any role and read the audit trail,
 * nothing is active without review (test/fixtures/schemathesis-policies); its pending requests stay
 * pending for the whole run (then lapse). A tenant of its own, so what the tool makes no other test sees.
 */
export const SCHEMATHESIS_TENANT = { id: '5c4e0a75-0000-4000-8000-00000000057a', name: 'schemathesis' };

/**
 * What callers may ask for (test/entitlements.test.ts): the shipped policies, on an instance of its
 * own, over accounts with names and environments (CATALOGUE_ACCOUNTS).
 */
export const CATALOGUE_TENANT = { id: 'ca7a1096-0000-4000-8000-0000000ca7a1', name: 'catalogue' };
export const CATALOGUE_ACCOUNTS = {
  production: { id: '700000000001', name: 'payments-prod' },
  staging: { id: '700000000002', name: 'payments-staging' },
  development: { id: '700000000003', name: 'Sandbox' },
  /** Listed without an environment or a name. */
  undescribed: { id: '700000000004', name: null },
};
/**
 * Another tenant's catalogue: the second test tenant's policies, and one that forbids ReadOnlyAccess
 * on the vault account by its id (test/fixtures/catalogue-policies); two staging accounts.
 */
export const CATALOGUE_OTHER_TENANT = { id: 'ca7a1096-0000-4000-8000-0000000ca7a2', name: 'catalogue-other' };
export const CATALOGUE_OTHER_ACCOUNTS = { staging: '710000000001', vault: '710000000002' };

/**
 * The web console's (test/console.test.ts): the shipped policies, signed in through a local OpenID
 * Connect provider (scripts/identity-provider.ts) by the people below, over named accounts.
 */
export const CONSOLE_TENANT = { id: 'c0e501e0-0000-4000-8000-00000000c0e5', name: 'console' };
export const CONSOLE_ACCOUNTS = { sandbox: '720000000001', tools: '720000000002', payments: '720000000003' };

/**
 * Accounts from AWS Organizations (test/organizations.test.ts): the organisation
 * test/support/organization.ts makes in moto (its `workloads` OU, less an account and an OU), with
 * policies on its OUs and tags, on an instance of its own. Its organisation is read only when a
 * test triggers its Schedule (organizationRead).
 */
/** Group grants (issue 39 §3): its groups are test/support/groups.ts's; its AWS calls pass the groupsAws proxy. */
export const GROUPS_TENANT = { id: '6a0b0000-0000-4000-8000-0000000060a1', name: 'groups' };
export const ORG_TENANT = { id: '0a9a0000-0000-4000-8000-00000000a0a9', name: 'organization' };

/**
 * Many accounts in one request (test/many.test.ts): the shipped policies over MANY_ACCOUNTS, named
 * data-000..data-249 and web-250..web-499, all staging, and one production account
 * (MANY_PRODUCTION_ACCOUNT), on an instance of its own.
 */
export const MANY_TENANT = { id: '3a7e0000-0000-4000-8000-00000000a7e1', name: 'many' };
export const MANY_ACCOUNTS = Array.from({ length: 500 }, (_, i) => ({ id: String(730000000000 + i), name: `${i < 250 ? 'data' : 'web'}-${String(i).padStart(3, '0')}` }));
export const MANY_PRODUCTION_ACCOUNT = '739999999999';

/**
 * Facts from outside sources (issue 40, test/facts.test.ts): FACTS_TENANT asks PagerDuty and Jira,
 * FACTS_OTHER_TENANT Opsgenie and ServiceNow (fakes in test/support), under the shipped policies.
 * No cache (each test changes what the sources say), and short deadlines.
 */
export const FACTS_TENANT = { id: 'fac70000-0000-4000-8000-00000000fac7', name: 'facts' };
export const FACTS_OTHER_TENANT = { id: 'fac70000-0000-4000-8000-00000000fac8', name: 'facts-other' };
export const FACTS_ACCOUNTS = { dev: '444400000001', production: '444400000002', otherDev: '444400000011' };
export const FACTS_TIMEOUT_MS = 400;
const SOURCE_SECRETS = { pagerduty: 'pd-test-token', opsgenie: 'og-test-key', jira: 'jira-api-token', servicenow: 'snow-password' };
const SOURCE_USER = 'jit-access@example.com';

export const SLACK_TENANT = { id: '5a1ac000-0000-4000-8000-000000005ac0', name: 'slack' };
/** SLACK_TENANT's production account where AdministratorAccess needs two approvals. */
export const SLACK_TWO_APPROVALS_ACCOUNT = '111111111113';
export const SLACK_BOT_TOKEN = 'xoxb-test-bot-token';
/** Each tenant with a Slack app has its own signing secret (OTHER_TENANT has one too). */
export const SIGNING_SECRETS = { [SLACK_TENANT.id]: 'slack-tenant-signing-secret', [OTHER_TENANT.id]: 'other-tenant-signing-secret' };
/** Slack user ids, and the emails the fake Slack's users.info gives for them; eve is nobody's reviewer. */
export const SLACK_USERS = { alice: 'UALICE01', carol: 'UCAROL01', dave: 'UDAVE001', eve: 'UEVE0001', erin: 'UERIN001', fred: 'UFRED001' };
const SLACK_EMAILS = {
  [SLACK_USERS.alice]: 'alice@example.com',
  [SLACK_USERS.carol]: 'Carol@Example.com',
  [SLACK_USERS.dave]: 'dave@example.com',
  [SLACK_USERS.eve]: 'eve@example.com',
  [SLACK_USERS.erin]: 'erin@example.com',
  [SLACK_USERS.fred]: 'fred@example.com',
};
/**
 * The other test tenants' per-principal limits: far above what a test sends (the defaults, 50
 * open grants and 60 ensures a minute, are less than the whole suite does as alice).
 */
const TEST_LIMITS = { max_open_per_principal: 100_000, ensure_rate_per_minute: 1_000_000, ensure_burst: 100_000, read_rate_per_minute: 1_000_000, read_burst: 100_000 };
export const PRODUCTION_ACCOUNT = '111111111111';
/** Another production account: AdministratorAccess there needs two approvals (policies/administrator.cedar). */
export const TWO_APPROVALS_ACCOUNT = '111111111112';
/** OTHER_TENANT's webhook with a secret in its path (a working one). */
export const SECRET_WEBHOOK_PATH = '/services/T0000/B0000/s3cr3tW3bh00kT0k3n';
/** TENANT's webhooks warn this long before a grant expires. */
export const EXPIRY_WARNING_SECONDS = 4;

export const USERS = {
  alice: { sub: 'alice', email: 'alice@example.com', groups: ['engineering'] },
  bob: { sub: 'bob', email: 'bob@example.com', groups: ['engineering'] },
  carol: { sub: 'carol', email: 'carol@example.com', groups: ['platform-admins'] },
  /** A second reviewer, for requests that need two approvals. */
  dave: { sub: 'dave', email: 'dave@example.com', groups: ['platform-admins'] },
  /** A reviewer in group senior, which only tests' own policies name. */
  petra: { sub: 'petra', email: 'petra@example.com', groups: ['platform-admins', 'senior'] },
  /** On call: may break the glass (policies/break-glass.cedar). */
  olga: { sub: 'olga', email: 'olga@example.com', groups: ['on-call'] },
  mallory: { sub: 'mallory', email: 'mallory@example.com', groups: [] as string[] },
  /** Reads the audit trail (policies/auditors.cedar). */
  sam: { sub: 'sam', email: 'sam@example.com', groups: ['security-auditors'] },
  /** Schemathesis' user (test/schemathesis.test.ts), of SCHEMATHESIS_TENANT. */
  stan: { sub: 'stan', email: 'stan@schemathesis.example', groups: [] as string[] },
  oscar: { sub: 'oscar', email: 'oscar@other.example', groups: ['engineering'] },
  fay: { sub: 'fay', email: 'fay@faults.example', groups: ['engineering'] },
  sid: { sub: 'sid', email: 'sid@sessions.example', groups: ['engineering'] },
  sue: { sub: 'sue', email: 'sue@sessions.example', groups: ['engineering'] },
  quinn: { sub: 'quinn', email: 'quinn@quota.example', groups: [] as string[] },
  rita: { sub: 'rita', email: 'rita@quota.example', groups: [] as string[] },
  uma: { sub: 'uma', email: 'uma@quota.example', groups: [] as string[] },
  vera: { sub: 'vera', email: 'vera@quota.example', groups: [] as string[] },
  /** The CLI's rate-limit test spends this one's ensure burst. */
  wes: { sub: 'wes', email: 'wes@quota.example', groups: [] as string[] },
  yuri: { sub: 'yuri', email: 'yuri@quota.example', groups: [] as string[] },
  zoe: { sub: 'zoe', email: 'zoe@quota.example', groups: [] as string[] },
  /** Schedules grants (grants.max_scheduled_per_principal). */
  tess: { sub: 'tess', email: 'tess@quota.example', groups: [] as string[] },
  nina: { sub: 'nina', email: 'nina@neighbour.example', groups: [] as string[] },
  ned: { sub: 'ned', email: 'ned@neighbour.example', groups: [] as string[] },
  lena: { sub: 'lena', email: 'lena@listed.example', groups: [] as string[] },
  /** Asks as engineering, and may break the glass (on-call). */
  otto: { sub: 'otto', email: 'otto@example.com', groups: ['engineering', 'on-call'] },
  /** Asks and reviews in the Slack tenant; Slack's reviewers map names her otherwise. */
  erin: { sub: 'erin', email: 'erin@example.com', groups: ['engineering', 'platform-admins'] },
  /** The same in the Slack tenant, whose Slack entry names a user of another name. */
  fred: { sub: 'fred', email: 'fred@example.com', groups: ['engineering', 'platform-admins'] },
};
const TENANT_OF: Partial<Record<User, string>> = {
  oscar: OTHER_TENANT.id,
  fay: FAULTS_TENANT.id,
  sid: SESSIONS_TENANT.id,
  sue: SESSIONS_TENANT.id,
  quinn: QUOTA_TENANT.id,
  rita: QUOTA_TENANT.id,
  uma: QUOTA_TENANT.id,
  vera: QUOTA_TENANT.id,
  wes: QUOTA_TENANT.id,
  yuri: QUOTA_TENANT.id,
  zoe: QUOTA_TENANT.id,
  tess: QUOTA_TENANT.id,
  nina: NEIGHBOUR_TENANT.id,
  ned: NEIGHBOUR_TENANT.id,
  lena: LISTED_TENANT.id,
  stan: SCHEMATHESIS_TENANT.id,
};
type User = keyof typeof USERS;

interface World {
  stack: Stack;
  baseUrl: string;
  temporal: Client;
  sso: SSOAdminClient;
  identity: IdentitystoreClient;
  worker: Worker;
  /** Receives the tenants' notification webhooks (see startWorld). */
  webhooks: WebhookReceiver;
  /** Between the faults tenant and moto. */
  faults: FaultProxy;
  /** Between the sessions tenant and moto. */
  sessionsAws: FaultProxy;
  /** Between the groups tenant and moto: describes a SCIM-synced group as AWS does. */
  groupsAws: FaultProxy;
  /** Slack's API and response_urls, for SLACK_TENANT and OTHER_TENANT. */
  slack: FakeSlack;
  /** Between the faults tenant's audit store and moto's S3. */
  auditOutage: OutageProxy;
  /** What FACTS_TENANT (PagerDuty, Jira) and FACTS_OTHER_TENANT (Opsgenie, ServiceNow) ask. */
  sources: { pagerduty: FakeOncallServer; opsgenie: FakeOncallServer; jira: FakeTicketServer; servicenow: FakeTicketServer };
  /** The in-process worker's metrics. */
  workerMetrics: WorkerMetrics;
  /** False when the run uses the Temporal that TEMPORAL_ADDRESS names (TEST_REUSE_TEMPORAL=1). */
  temporalStartedHere: boolean;
  stop(): Promise<void>;
}
let world: World | undefined;

export function current(): World {
  if (!world) throw new Error('the test stack is not running');
  return world;
}

/**
 * A Temporal named by TEMPORAL_ADDRESS is used only when the run asks for it (TEST_REUSE_TEMPORAL=1):
 * a variable left over in a shell or a CI job would otherwise run the suite on whatever server it
 * names (another engine, another run's data). Without it the run refuses to start.
 */
function reuseTemporal(): boolean {
  const given = process.env.TEMPORAL_ADDRESS || undefined;
  const reuse = process.env.TEST_REUSE_TEMPORAL || undefined;
  if (reuse !== undefined && reuse !== '1') throw new Error(`TEST_REUSE_TEMPORAL=${JSON.stringify(reuse)}: give 1, or leave it unset`);
  if (reuse === '1' && !given) throw new Error('TEST_REUSE_TEMPORAL=1 needs TEMPORAL_ADDRESS: the Temporal server to run the tests on');
  if (given && reuse !== '1') {
    throw new Error(
      `TEMPORAL_ADDRESS=${given} is set: the tests start a Temporal server of their own. Unset it, or set TEST_REUSE_TEMPORAL=1 to run them on that server`,
    );
  }
  if (given) console.error(`tests: on the Temporal server at ${given} (TEMPORAL_ADDRESS, TEST_REUSE_TEMPORAL=1), not one of their own`);
  return given !== undefined;
}

export async function startWorld(): Promise<void> {
  const reuse = reuseTemporal();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'access-test-'));
  const webhooks = await startWebhookReceiver();
  const faults = await FaultProxy.start();
  const sessionsAws = await FaultProxy.start();
  const groupsAws = await FaultProxy.start();
  const slack = await startFakeSlack(SLACK_BOT_TOKEN, SLACK_EMAILS);
  const botTokenFile = path.join(dir, 'slack-bot-token');
  writeFileSync(botTokenFile, `${SLACK_BOT_TOKEN}\n`);
  const slackApp = (tenantId: string) => {
    const signingSecretFile = path.join(dir, `slack-signing-secret-${tenantId}`);
    writeFileSync(signingSecretFile, `${SIGNING_SECRETS[tenantId]}\n`);
    return {
      signing_secret_file: signingSecretFile,
      bot_token_file: botTokenFile,
      api_url: slack.apiUrl,
      reviewers: {
        'carol@example.com': { id: 'carol', groups: ['platform-admins'] },
        'dave@example.com': { id: 'dave', groups: ['platform-admins'] },
        'alice@example.com': { id: 'alice', groups: ['engineering'] },
        // Not the id erin's tokens carry (sub erin): one person all the same, by the user claim (email).
        'erin@example.com': { id: 'erin-slack', groups: ['platform-admins'] },
        // A user that is not the one his tokens carry (their email): one person all the same, by email.
        'fred@example.com': { id: 'fred-slack', user: 'fred.f', groups: ['platform-admins'] },
      },
    };
  };
  const auditOutage = await OutageProxy.start();
  const pagerduty = await startFakePagerDuty(SOURCE_SECRETS.pagerduty);
  const opsgenie = await startFakeOpsgenie(SOURCE_SECRETS.opsgenie);
  const jira = await startFakeJira(SOURCE_USER, SOURCE_SECRETS.jira);
  const servicenow = await startFakeServiceNow(SOURCE_USER, SOURCE_SECRETS.servicenow);
  // One secret from the environment, the others from files, as a deployment may have them.
  process.env.TEST_PAGERDUTY_TOKEN = SOURCE_SECRETS.pagerduty;
  const secretFile = (name: keyof typeof SOURCE_SECRETS) => {
    const file = path.join(dir, `${name}-secret`);
    writeFileSync(file, `${SOURCE_SECRETS[name]}\n`);
    return file;
  };
  const timing = { timeout_ms: FACTS_TIMEOUT_MS, cache_seconds: 0 };
  // A newer read of an organisation is seen within a second, not a minute (tests wait for it).
  env.organizationCheckMs = 1_000;
  const stack = await startStack({
    dir,
    beforeConfig: async (awsEndpoint) => {
      await seedOrganization(awsEndpoint, dir);
      await seedGroups(awsEndpoint, dir);
    },
    tenants: [
      {
        ...TENANT,
        grants: TEST_LIMITS,
        accounts: { [PRODUCTION_ACCOUNT]: { environment: 'production' }, [TWO_APPROVALS_ACCOUNT]: { environment: 'production' } },
        // A reviewers' channel, a requesters' channel, and one that fails each first delivery.
        notifications: {
          webhooks: [
            { url: `${webhooks.url}/reviewers`, events: ['review_requested'] },
            { url: `${webhooks.url}/requesters`, events: ['approved', 'denied', 'active', 'expiring'] },
            { url: `${webhooks.url}/flaky/requesters`, events: ['approved'] },
            { url: `${webhooks.url}/oncall`, events: ['break_glass'] },
          ],
          expiry_warning_seconds: EXPIRY_WARNING_SECONDS,
        },
      },
      {
        ...OTHER_TENANT,
        policies: path.join(repoRoot, 'test/fixtures/other-tenant-policies'),
        grants: { pending_request_ttl_seconds: 3, ...TEST_LIMITS },
        // Webhooks that never answer well (dead, a redirect) and one whose answer never ends: grants
        // must not notice. The last one's path is a secret, as in a Slack webhook URL.
        notifications: {
          webhooks: [
            { url: `${webhooks.url}/dead/requesters`, events: ['active'] },
            { url: `${webhooks.url}/redirect/requesters`, events: ['active'] },
            { url: `${webhooks.url}/huge/requesters`, events: ['active'] },
            { url: `${webhooks.url}${SECRET_WEBHOOK_PATH}`, events: ['active'] },
          ],
          slack: slackApp(OTHER_TENANT.id),
        },
      },
      { ...FAULTS_TENANT, policies: path.join(repoRoot, 'test/fixtures/other-tenant-policies'), awsEndpoint: faults.url, auditEndpoint: auditOutage.url, grants: TEST_LIMITS },
      { ...SESSIONS_TENANT, policies: path.join(repoRoot, 'test/fixtures/other-tenant-policies'), awsEndpoint: sessionsAws.url, revokeSessions: true, grants: TEST_LIMITS,
        sharesInstance: true, accounts_only: true, accounts: Object.fromEntries(SESSIONS_ACCOUNTS.map((a) => [a, { environment: 'staging' }])) },
      {
        id: QUOTA_TENANT.id,
        name: QUOTA_TENANT.name,
        policies: path.join(repoRoot, 'test/fixtures/quota-policies'),
        grants: {
          max_open_per_principal: QUOTA_TENANT.maxOpen,
          max_scheduled_per_principal: QUOTA_TENANT.maxScheduled,
          ensure_rate_per_minute: QUOTA_TENANT.ratePerMinute,
          ensure_burst: QUOTA_TENANT.burst,
          read_rate_per_minute: QUOTA_TENANT.readsPerMinute,
          read_burst: QUOTA_TENANT.readBurst,
        },
        accounts: { ...Object.fromEntries(QUOTA_ACCOUNTS.map((a) => [a, { environment: 'staging' }])), [QUOTA_UNDESCRIBED_ACCOUNT]: {} },
      },
      { ...LISTED_TENANT, grants: TEST_LIMITS, sharesInstance: true, accounts_only: true, accounts: { [LISTED_ACCOUNT]: { environment: 'staging' } } },
      {
        id: NEIGHBOUR_TENANT.id,
        name: NEIGHBOUR_TENANT.name,
        grants: { ...TEST_LIMITS, read_rate_per_minute: NEIGHBOUR_TENANT.readsPerMinute, read_burst: NEIGHBOUR_TENANT.readBurst },
        sharesInstance: true, accounts_only: true, accounts: { [NEIGHBOUR_ACCOUNT]: { environment: 'staging' } } },
      {
        ...SCHEMATHESIS_TENANT,
        policies: path.join(repoRoot, 'test/fixtures/schemathesis-policies'),
        grants: { pending_request_ttl_seconds: 600, ...TEST_LIMITS },
        // Its sign-in lookup answers (no provider behind it: Schemathesis reads the route only).
        oidcClientId: 'access-cli',
      },
      {
        ...SLACK_TENANT,
        grants: TEST_LIMITS,
        accounts: { [SLACK_TWO_APPROVALS_ACCOUNT]: { environment: 'production' } },
        notifications: { webhooks: [{ url: `${webhooks.url}/slack/reviewers`, events: ['review_requested'] }], slack: slackApp(SLACK_TENANT.id) },
      },
      {
        ...CATALOGUE_TENANT,
        grants: TEST_LIMITS,
        accounts: Object.fromEntries(
          Object.entries(CATALOGUE_ACCOUNTS).map(([environment, a]) => [a.id, a.name === null ? {} : { environment, name: a.name }]),
        ),
      },
      {
        ...CONSOLE_TENANT,
        grants: TEST_LIMITS,
        accounts: {
          [CONSOLE_ACCOUNTS.sandbox]: { environment: 'development', name: 'sandbox' },
          [CONSOLE_ACCOUNTS.tools]: { environment: 'development', name: 'tools' },
          [CONSOLE_ACCOUNTS.payments]: { environment: 'production', name: 'payments-prod' },
        },
        identityProvider: { people: (['alice', 'carol', 'dave', 'olga', 'sam', 'mallory'] as const).map((u) => ({ login: USERS[u].sub, email: USERS[u].email, groups: USERS[u].groups })) },
      },
      {
        ...ORG_TENANT,
        policies: path.join(dir, 'organization-policies'),
        grants: TEST_LIMITS,
        organization: () => ({
          roots_or_ous: [organization().ous.workloads],
          exclude: [organization().accounts.excluded, organization().ous.attic],
          environment_tag: 'env',
        }),
      },
      { ...GROUPS_TENANT, policies: path.join(dir, 'group-policies'), grants: TEST_LIMITS, awsEndpoint: groupsAws.url, groups: groupsConfig },
      {
        ...MANY_TENANT,
        grants: TEST_LIMITS,
        accounts: {
          ...Object.fromEntries(MANY_ACCOUNTS.map((a) => [a.id, { environment: 'staging', name: a.name }])),
          [MANY_PRODUCTION_ACCOUNT]: { environment: 'production', name: 'many-prod' },
        },
      },
      {
        ...FACTS_TENANT,
        grants: TEST_LIMITS,
        accounts: { [FACTS_ACCOUNTS.dev]: { environment: 'development', name: 'facts-dev' }, [FACTS_ACCOUNTS.production]: { environment: 'production', name: 'facts-prod' } },
        oncall: { source: 'pagerduty', url: pagerduty.url, token_env: 'TEST_PAGERDUTY_TOKEN', ...timing },
        tickets: { source: 'jira', url: jira.url, username: SOURCE_USER, token_file: secretFile('jira'), change_window: jira.changeWindowFields, ...timing },
      },
      {
        ...FACTS_OTHER_TENANT,
        grants: TEST_LIMITS,
        accounts: { [FACTS_ACCOUNTS.otherDev]: { environment: 'development', name: 'facts-other-dev' } },
        oncall: { source: 'opsgenie', url: opsgenie.url, token_file: secretFile('opsgenie'), ...timing },
        tickets: { source: 'servicenow', url: servicenow.url, username: SOURCE_USER, token_file: secretFile('servicenow'), ...timing },
      },
      {
        ...CATALOGUE_OTHER_TENANT,
        policies: path.join(repoRoot, 'test/fixtures/catalogue-policies'),
        grants: TEST_LIMITS,
        accounts: {
          [CATALOGUE_OTHER_ACCOUNTS.staging]: { environment: 'staging', name: 'other-staging' },
          [CATALOGUE_OTHER_ACCOUNTS.vault]: { environment: 'staging', name: 'vault' },
        },
      },
    ],
    users: Object.values(USERS).map((u) => u.email),
    permissionSets: ['ReadOnlyAccess', 'AdministratorAccess', 'PowerUserAccess'],
  });
  if (reuse && stack.temporalAddress !== process.env.TEMPORAL_ADDRESS) {
    await stack.stop();
    throw new Error(`TEST_REUSE_TEMPORAL=1, but TEMPORAL_ADDRESS=${process.env.TEMPORAL_ADDRESS} did not answer`);
  }
  await faults.upstream(stack.awsEndpoint);
  await sessionsAws.upstream(stack.awsEndpoint);
  await groupsAws.upstream(stack.awsEndpoint);
  await groupsAws.externalGroup(groups().ids.scimSynced);
  auditOutage.forwardTo(stack.awsEndpoint);
  const config = loadConfig(stack.configPath);
  const services = await startLocalServices(stack, config);
  const aws = awsClientConfig(stack.awsEndpoint);
  world = {
    stack,
    baseUrl: services.baseUrl,
    temporal: new Client({ connection: services.connection, namespace: env.temporalNamespace }),
    sso: new SSOAdminClient(aws),
    identity: new IdentitystoreClient(aws),
    worker: services.worker,
    webhooks,
    faults,
    sessionsAws,
    groupsAws,
    slack,
    auditOutage,
    sources: { pagerduty, opsgenie, jira, servicenow },
    workerMetrics: services.workerMetrics,
    temporalStartedHere: !reuse,
    async stop() {
      await services.stop();
      await stack.stop();
      await webhooks.close();
      await faults.close();
      await sessionsAws.close();
      await groupsAws.close();
      await slack.close();
      await auditOutage.close();
      await Promise.all([pagerduty.close(), opsgenie.close(), jira.close(), servicenow.close()]);
    },
  };
}

export async function stopWorld(): Promise<void> {
  await world?.stop();
  world = undefined;
}

export async function tokenFor(user: User, tenantId = TENANT_OF[user] ?? TENANT.id): Promise<string> {
  return current().stack.issueToken(tenantId, USERS[user]);
}

export interface Reply<T = any> {
  status: number;
  body: T;
  headers?: Headers;
}

export async function call<T = any>(
  method: string,
  urlPath: string,
  opts: { as?: User; token?: string | null; tenant?: string | null; body?: unknown; rawBody?: string } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const token = opts.token !== undefined ? opts.token : await tokenFor(opts.as ?? 'alice');
  if (token) headers.authorization = `Bearer ${token}`;
  const tenant = opts.tenant !== undefined ? opts.tenant : (TENANT_OF[opts.as ?? 'alice'] ?? TENANT.id);
  if (tenant) headers['x-tenant-id'] = tenant;
  const body = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const res = await fetch(current().baseUrl + urlPath, { method, headers, body });
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

/** An error answer in the contract's shape: `{code, message, details?, notices?}`, no stack trace. */
export function assertErrorShape(reply: { body: any }, code?: string): void {
  if (code !== undefined) assert.equal(reply.body?.code, code, JSON.stringify(reply.body));
  assert.equal(typeof reply.body?.code, 'string', JSON.stringify(reply.body));
  assert.equal(typeof reply.body.message, 'string');
  assert.ok(!/at .+\.(js|ts):\d+/.test(JSON.stringify(reply.body)), 'no stack trace');
  for (const key of Object.keys(reply.body)) assert.ok(['code', 'message', 'details', 'notices'].includes(key), key);
}

/** A 200's grants, or an error's code, message, details and notices. */
export interface EnsureReply {
  grants: GrantView[];
  code?: string;
  message?: string;
  details?: any;
  notices?: string[];
}

export interface EntitlementInput {
  target: string;
  role: string;
  duration_seconds?: number;
}

export async function ensure(
  entitlements: EntitlementInput[],
  opts: { as?: User; reason?: string; attachments?: string[]; dryRun?: boolean; startsAt?: string } = {},
): Promise<Reply<EnsureReply>> {
  return call('POST', '/v1/access/ensure', {
    as: opts.as,
    body: {
      entitlements,
      justification: { reason: opts.reason ?? 'testing', attachments: opts.attachments ?? [] },
      ...(opts.dryRun === undefined ? {} : { dry_run: opts.dryRun }),
      ...(opts.startsAt === undefined ? {} : { starts_at: opts.startsAt }),
    },
  });
}

let accountSeq = 0;
/** A fresh account per test, so no test sees another's grants or assignments. */
export function freshAccount(): string {
  accountSeq += 1;
  return `2${String(process.pid % 100000).padStart(5, '0')}${String(accountSeq).padStart(6, '0')}`;
}

export const target = (account: string) => `AWS::Account::${account}`;

export async function userIdOf(user: User): Promise<string> {
  const { identity, stack } = current();
  const { UserId } = await identity.send(
    new GetUserIdCommand({
      IdentityStoreId: stack.identityStoreId,
      AlternateIdentifier: { UniqueAttribute: { AttributePath: 'userName', AttributeValue: USERS[user].email } },
    }),
  );
  return UserId!;
}

/** The tenant whose tokens the user carries (the main tenant unless TENANT_OF says otherwise). */
export const tenantOf = (user: User): string => TENANT_OF[user] ?? TENANT.id;

/** The user's assignments of `role` on `account`, as the (emulated) AWS holds them on the instance of the user's tenant (or `tenantId`'s). */
export async function assignmentsOf(user: User, account: string, role: string, tenantId = tenantOf(user)): Promise<number> {
  const { sso, stack } = current();
  const [userId, permissionSetArn] = await Promise.all([userIdOf(user), permissionSetArnOf(role, tenantId)]);
  const listed = await sso.send(
    new ListAccountAssignmentsCommand({ InstanceArn: stack.instanceArnOf(tenantId), AccountId: account, PermissionSetArn: permissionSetArn }),
  );
  return (listed.AccountAssignments ?? []).filter((a) => a.PrincipalType === 'USER' && a.PrincipalId === userId).length;
}

/** The user's assignment of `role` on `account` (on the instance of `tenantId`), as AWS's create and delete calls name it. */
async function assignmentOf(user: User, account: string, role: string, tenantId: string) {
  return {
    InstanceArn: current().stack.instanceArnOf(tenantId),
    TargetId: account,
    TargetType: 'AWS_ACCOUNT' as const,
    PermissionSetArn: await permissionSetArnOf(role, tenantId),
    PrincipalType: 'USER' as const,
    PrincipalId: await userIdOf(user),
  };
}

/**
 * An assignment made behind the service's back (by hand, or another tool), on the instance of the
 * user's tenant, or of `tenantId` (the identity store, and so every user, is shared).
 */
export async function assignDirectly(user: User, account: string, role: string, tenantId = tenantOf(user)): Promise<void> {
  await current().sso.send(new CreateAccountAssignmentCommand(await assignmentOf(user, account, role, tenantId)));
}

/** An assignment removed behind the service's back. */
export async function unassignDirectly(user: User, account: string, role: string, tenantId = tenantOf(user)): Promise<void> {
  await current().sso.send(new DeleteAccountAssignmentCommand(await assignmentOf(user, account, role, tenantId)));
}

export async function permissionSetArnOf(role: string, tenantId = TENANT.id): Promise<string> {
  const { sso, stack } = current();
  const instanceArn = stack.instanceArnOf(tenantId);
  const { PermissionSets = [] } = await sso.send(new ListPermissionSetsCommand({ InstanceArn: instanceArn }));
  for (const arn of PermissionSets) {
    const { PermissionSet } = await sso.send(new DescribePermissionSetCommand({ InstanceArn: instanceArn, PermissionSetArn: arn }));
    if (PermissionSet?.Name === role) return arn;
  }
  throw new Error(`no permission set ${role} in moto`);
}

/**
 * Runs a reconciliation round of the tenant through its Schedule (created or brought up to date as
 * the worker does at start-up, then triggered) and answers the round's report once it completed:
 * from then on the API knows the permission sets the round read. The Schedule stays (the API reads
 * the report through it) until `deleteReconcileSchedule`.
 */
export async function reconciliationRound(tenantId: string): Promise<ReconcileReport> {
  const { stack, temporal } = current();
  const config = loadConfig(stack.configPath);
  await ensureReconcileSchedules(temporal, { ...config, tenants: config.tenants.filter((t) => t.id === tenantId) });
  const schedule = temporal.schedule.getHandle(reconcileScheduleId(tenantId));
  const runsOf = async () => (await schedule.describe()).info.recentActions.map((a) => a.action.workflow);
  const before = new Set((await runsOf()).map((run) => run.firstExecutionRunId));
  await schedule.trigger();
  return eventually('a reconciliation round of the tenant', async () => {
    const run = (await runsOf()).find((r) => !before.has(r.firstExecutionRunId));
    return run && temporal.workflow.getHandle<typeof reconcileWorkflow>(run.workflowId, run.firstExecutionRunId).result();
  }, 60_000);
}

/** The workflow id of the run organizationRead last waited for. */
export let lastOrganizationRead = '';

/**
 * Triggers a read of the tenant's organisation (its Schedule, as docs/operations.md has an operator
 * do it: at once, beside any read still going, which may have begun before the change) and answers
 * its report, unpacked, once it completed. The API takes it within ORGANIZATION_CHECK_SECONDS.
 */
export async function organizationRead(tenantId = ORG_TENANT.id): Promise<OrganizationReport & { grantsEnded: number | null }> {
  const { temporal } = current();
  const schedule = temporal.schedule.getHandle(organizationScheduleId(tenantId));
  const runsOf = async () => (await schedule.describe()).info.recentActions.map((a) => a.action.workflow);
  const before = new Set((await runsOf()).map((run) => run.firstExecutionRunId));
  // Temporal names a Schedule's runs by the second: a trigger in the second of the run before it
  // (the one the Schedule's creation started) starts nothing, so an operator tries again, as here.
  let triggeredAt = 0;
  const result = await eventually(
    'a read of the organisation',
    async () => {
      const run = (await runsOf()).find((r) => !before.has(r.firstExecutionRunId));
      if (!run && Date.now() - triggeredAt > 3_000) {
        await schedule.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
        triggeredAt = Date.now();
      }
      if (run) lastOrganizationRead = run.workflowId;
      return run && temporal.workflow.getHandle<typeof organizationWorkflow>(run.workflowId, run.firstExecutionRunId).result();
    },
    120_000,
  );
  return { ...unpackOrganization(result), grantsEnded: result.grantsEnded };
}

export async function deleteReconcileSchedule(tenantId: string): Promise<void> {
  await current().temporal.schedule.getHandle(reconcileScheduleId(tenantId)).delete();
}

/** Nothing was started for the key: its grant workflow does not exist (asked of the run itself, not of visibility, which lags). */
export async function assertNoGrantRun(user: User, account: string, role: string): Promise<void> {
  const handle = current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: tenantOf(user), principalId: USERS[user].sub, target: target(account), role }));
  await assert.rejects(handle.describe(), (err: Error) => err.name === 'WorkflowNotFoundError', `a grant run was started for ${user}, ${role} on ${account}`);
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The grant as GET /v1/access/grants/{id} shows it, once it has reached `status`. */
export async function grantReaching(id: string, status: string, as: User = 'alice', timeoutMs?: number): Promise<GrantView> {
  return eventually(`grant ${id} to be ${status}`, async () => {
    const reply = await call<GrantView>('GET', `/v1/access/grants/${id}`, { as });
    return reply.status === 200 && reply.body.status === status ? reply.body : undefined;
  }, timeoutMs);
}

/**
 * With RECORD_HISTORIES=1, saves the history of the grant's workflow under test/histories for the
 * replay test (`npm run record-histories`): its last run, or (`continued`) a run that continued as
 * new. The grant must have closed. The Temporal CLI writes
 * the JSON, in the same form the Web UI downloads.
 */
export async function recordHistory(name: string, grantId: string, run: 'last' | 'continued' = 'last'): Promise<void> {
  const which = run === 'continued' ? ` AND ExecutionStatus = 'ContinuedAsNew'` : '';
  await recordRun(name, `AccessGrantId = '${grantId}'${which}`);
}

/** The latest run the visibility `query` lists, once it has closed. */
async function closedRun(query: string) {
  return eventually(
    `a closed run for ${query}`,
    async () => {
      for await (const info of current().temporal.workflow.list({ query })) return info.status.name === 'RUNNING' ? undefined : info;
      return undefined;
    },
    120_000,
  );
}

/**
 * What a grant's last run did once its expiry timer fired, from its history: the workflow tasks
 * and activities (by type) an expiry costs, and whether the run completed.
 */
export async function afterExpiryTimer(grantId: string): Promise<{ workflowTasks: number; timerTask: string[]; activities: string[]; completed: boolean }> {
  const run = await closedRun(`AccessGrantId = '${grantId}'`);
  const events = (await current().temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory()).events ?? [];
  const fired = events.map((e) => e.timerFiredEventAttributes != null).lastIndexOf(true);
  assert.ok(fired >= 0, `no timer fired in grant ${grantId}'s run`);
  const after = events.slice(fired);
  // The events the timer's own task recorded: each command's event names the task that sent it.
  const timerTaskId = String(after.find((e) => e.workflowTaskCompletedEventAttributes)?.eventId);
  const sentBy = (e: (typeof events)[number]) => Object.values(e).some((a) => a !== null && typeof a === 'object' && String((a as { workflowTaskCompletedEventId?: unknown }).workflowTaskCompletedEventId) === timerTaskId);
  return {
    workflowTasks: after.filter((e) => e.workflowTaskCompletedEventAttributes).length,
    timerTask: after.filter(sentBy).map((e) => String(temporal.api.enums.v1.EventType[e.eventType ?? 0])),
    activities: after.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name!] : [])),
    completed: after.some((e) => e.workflowExecutionCompletedEventAttributes),
  };
}

/**
 * With RECORD_HISTORIES=1, writes the history of the latest run the visibility `query` lists to
 * test/histories/<name>.json, once that run has closed: a history recorded while its run is open
 * ends mid-way, and its replay proves only that far.
 */
export async function recordRun(name: string, query: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const run = await closedRun(query);
  const json = temporalCli(['workflow', 'show', '--workflow-id', run.workflowId, '--run-id', run.runId, '--output', 'json']);
  writeFileSync(path.join(repoRoot, 'test/histories', `${name}.json`), json);
}

/** Runs the Temporal CLI against the test server, as an operator would. */
export function temporalCli(args: string[]): string {
  const cli = execFileSync(path.join(repoRoot, 'temporal-dev.sh'), ['install'], { encoding: 'utf8' }).trim();
  return execFileSync(cli, [...args, '--address', current().stack.temporalAddress], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

/** An ensure as the API sends it to a grant's workflow (a reason, no ticket, no review notices). */
export function workflowEnsure(durationSeconds: number, reason: string, opts: { autoApprove?: boolean; pendingTtlSeconds?: number } = {}): EnsureRequest {
  return {
    durationSeconds,
    autoApprove: opts.autoApprove ?? true,
    justification: { reason },
    validation: { has_reason: true, has_ticket_attachment: false },
    pendingTtlSeconds: opts.pendingTtlSeconds ?? 60,
    reviewDiagnostics: [],
  };
}
