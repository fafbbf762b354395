// The tenants file: a bad one stops start-up with a message that names the field.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, cursorKeyOf, loadConfig } from '../src/config';

const dir = mkdtempSync(path.join(os.tmpdir(), 'access-config-'));
const tenant = {
  id: '2489E9AD-2EE2-8E00-8EC9-32D5F69181C0',
  name: 'example',
  auth: { issuer: 'https://idp.example.com/', audience: 'access-api', jwks_file: './jwks.json' },
  aws: { region: 'us-east-1', sso_instance_arn: 'arn:aws:sso:::instance/ssoins-0123456789abcdef', identity_store_id: 'd-0123456789' },
};

/** Another tenant on the same instance, with an identity provider of its own. */
/** An OU id as AWS Organizations writes them. */
const ORG_OU = 'ou-ab12-11111111';

const neighbour = { ...tenant, id: '7d1f0c4e-5a6b-4c3d-9e8f-0a1b2c3d4e5f', name: 'neighbour', auth: { ...tenant.auth, audience: 'neighbour-api' } };

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  it('reads YAML and JSON, with defaults, lower-case ids and paths resolved against the file', () => {
    const config = loadConfig(write('good.json', JSON.stringify({ tenants: [tenant] })));
    const [t] = config.tenants;
    assert.equal(t.id, tenant.id.toLowerCase());
    assert.equal(t.auth.jwks_file, path.join(dir, 'jwks.json'));
    assert.equal(t.policies, path.join(dir, 'policies'));
    assert.deepEqual(t.grants, {
      default_duration_seconds: 3600,
      max_duration_seconds: 43200,
      pending_request_ttl_seconds: 86400,
      max_open_per_principal: 50,
      max_schedule_ahead_seconds: 30 * 24 * 3600,
      ensure_rate_per_minute: 60,
      ensure_burst: 20,
      read_rate_per_minute: 600,
      read_burst: 120,
    });
    assert.deepEqual(t.accounts, {});
    assert.equal(t.accounts_only, false);
    assert.deepEqual(t.notifications, { webhooks: [], expiry_warning_seconds: 300 });
    assert.deepEqual(t.aws.limits, { calls_per_second: 20, assignment_operations_in_flight: 10, reconcile_share: 0.25 });
  });

  it('reads a Slack app: secret files against the file, the default api_url and click ceiling, reviewer emails in lower case', () => {
    const slack = { signing_secret_file: './slack/secret', bot_token_file: '/etc/access/bot-token', reviewers: { 'Carol@Example.com': { id: 'carol' } } };
    const [t] = loadConfig(write('slack.json', JSON.stringify({ tenants: [{ ...tenant, notifications: { slack } }] }))).tenants;
    assert.deepEqual(t.notifications.slack, {
      signing_secret_file: path.join(dir, 'slack/secret'),
      bot_token_file: '/etc/access/bot-token',
      api_url: 'https://slack.com/api',
      reviewers: { 'carol@example.com': { id: 'carol', groups: [] } },
      clicks_per_minute: 600,
      clicks_burst: 100,
    });
  });

  const slackApp = { signing_secret_file: 's', bot_token_file: 't' };
  const bad: [string, unknown, RegExp][] = [
    ['a Slack app without a bot token', { tenants: [{ ...tenant, notifications: { slack: { signing_secret_file: 's' } } }] }, /tenants\.0\.notifications\.slack\.bot_token_file/],
    [
      'a Slack api_url over plain http',
      { tenants: [{ ...tenant, notifications: { slack: { ...slackApp, api_url: 'http://slack.example.com/api' } } }] },
      /tenants\.0\.notifications\.slack\.api_url: .*https/,
    ],
    ['a missing region', { tenants: [{ ...tenant, aws: { ...tenant.aws, region: undefined } }] }, /tenants\.0\.aws\.region/],
    ['a malformed instance ARN', { tenants: [{ ...tenant, aws: { ...tenant.aws, sso_instance_arn: 'ssoins-1' } }] }, /tenants\.0\.aws\.sso_instance_arn/],
    ['an unknown field', { tenants: [{ ...tenant, colour: 'blue' }] }, /colour/],
    ['no key source', { tenants: [{ ...tenant, auth: { issuer: 'x', audience: 'y' } }] }, /tenants\.0\.auth.*jwks_file/],
    ['a duplicate tenant', { tenants: [tenant, tenant] }, /duplicate id/],
    ['no tenants', { tenants: [] }, /tenants/],
    [
      'an unknown notification event',
      { tenants: [{ ...tenant, notifications: { webhooks: [{ url: 'https://hooks.example.com/x', events: ['approved', 'granted'] }] } }] },
      /tenants\.0\.notifications\.webhooks\.0\.events\.1/,
    ],
    ['a webhook that is not http(s)', { tenants: [{ ...tenant, notifications: { webhooks: [{ url: 'file:///etc/passwd', events: ['active'] }] } }] }, /tenants\.0\.notifications\.webhooks\.0\.url/],
    ['an audit prefix with a leading slash', { tenants: [{ ...tenant, audit: { s3: { bucket: 'audit-bucket', prefix: '/audit' } } }] }, /tenants\.0\.audit\.s3\.prefix/],
    ['a zero call rate', { tenants: [{ ...tenant, aws: { ...tenant.aws, limits: { calls_per_second: 0 } } }] }, /tenants\.0\.aws\.limits\.calls_per_second/],
    [
      'two limits for one instance',
      { tenants: [tenant, { ...tenant, id: '7d1f0c4e-5a6b-4c3d-9e8f-0a1b2c3d4e5f', aws: { ...tenant.aws, limits: { calls_per_second: 5 } } }] },
      /tenants\.1\.aws\.limits: differs from another tenant's/,
    ],
    [
      'two tenants on one instance, one without accounts_only',
      { tenants: [{ ...tenant, accounts_only: true, accounts: { '111111111111': {} } }, neighbour] },
      /tenants\.1\.accounts_only: tenants "example" \(2489e9ad-2ee2-8e00-8ec9-32d5f69181c0\) and "neighbour" \(7d1f0c4e-5a6b-4c3d-9e8f-0a1b2c3d4e5f\) share sso_instance_arn arn:aws:sso:::instance\/ssoins-0123456789abcdef; an account belongs to one tenant per instance/,
    ],
    [
      'an account listed by two tenants on one instance',
      {
        tenants: [
          { ...tenant, accounts_only: true, accounts: { '111111111111': {}, '222222222222': {} } },
          { ...neighbour, accounts_only: true, accounts: { '333333333333': {}, '222222222222': {} } },
        ],
      },
      /tenants\.1\.accounts\.222222222222: listed by both tenants "example" .* and "neighbour" .* share sso_instance_arn/,
    ],
    [
      'an organization without a root or OU',
      { tenants: [{ ...tenant, organization: { roots_or_ous: [] } }] },
      /tenants\.0\.organization\.roots_or_ous: name at least one root \(r-\.\.\.\) or OU \(ou-\.\.\.\)/,
    ],
    ['an account id among roots_or_ous', { tenants: [{ ...tenant, organization: { roots_or_ous: ['111111111111'] } }] }, /tenants\.0\.organization\.roots_or_ous\.0: a root id \(r-\.\.\.\) or an OU id/],
    ['a root in exclude', { tenants: [{ ...tenant, organization: { roots_or_ous: [ORG_OU], exclude: ['r-ab12'] } }] }, /tenants\.0\.organization\.exclude\.0: an account id \(12 digits\) or an OU id/],
    ['a group name with a quote', { tenants: [{ ...tenant, groups: [{ name: 'data "admins"' }] }] }, /tenants\.0\.groups\.0\.name: letters, digits, spaces/],
    ['an unknown group field', { tenants: [{ ...tenant, groups: [{ name: 'data-admins', members: [] }] }] }, /tenants\.0\.groups\.0: Unrecognized key/],
    [
      'a group named twice (by one name and another\'s id)',
      { tenants: [{ ...tenant, groups: [{ name: 'data-admins', id: 'g-1' }, { name: 'g-1' }] }] },
      /tenants\.0\.groups\.1: g-1 names two groups; a target names one group$/,
    ],
    ['an unknown organization field', { tenants: [{ ...tenant, organization: { roots_or_ous: [ORG_OU], ous: [] } }] }, /tenants\.0\.organization: Unrecognized key/],
    [
      'an OU named by two tenants on one instance',
      { tenants: [{ ...tenant, organization: { roots_or_ous: [ORG_OU] } }, { ...neighbour, organization: { roots_or_ous: ['ou-ab12-99999999', ORG_OU] } }] },
      /tenants\.1\.organization\.roots_or_ous: ou-ab12-11111111 named by both tenants "example" .* and "neighbour" .* share sso_instance_arn .*; an account belongs to one tenant per instance$/,
    ],
    [
      'a group listed by two tenants on one instance (by its name, or its id)',
      {
        tenants: [
          { ...tenant, accounts_only: true, accounts: { '111111111111': {} }, groups: [{ name: 'data-admins', id: 'g-1' }] },
          { ...neighbour, accounts_only: true, accounts: { '333333333333': {} }, groups: [{ name: 'other-admins' }, { name: 'renamed', id: 'g-1' }] },
        ],
      },
      /tenants\.1\.groups: g-1 listed by both tenants "example" .* and "neighbour" .* share sso_instance_arn .*; a group belongs to one tenant per instance$/,
    ],
    ['an external_id without assume_role_arn', { tenants: [{ ...tenant, aws: { ...tenant.aws, external_id: 'abc-123' } }] }, /tenants\.0\.aws\.external_id: applies only with assume_role_arn/],
    ['a role_session_name without assume_role_arn', { tenants: [{ ...tenant, aws: { ...tenant.aws, role_session_name: 'jit' } }] }, /tenants\.0\.aws\.role_session_name: applies only with assume_role_arn/],
    ['a user ARN for assume_role_arn', { tenants: [{ ...tenant, aws: { ...tenant.aws, assume_role_arn: 'arn:aws:iam::123456789012:user/jit' } }] }, /tenants\.0\.aws\.assume_role_arn: an IAM role ARN/],
    [
      'a role session shorter than STS allows',
      { tenants: [{ ...tenant, aws: { ...tenant.aws, assume_role_arn: 'arn:aws:iam::123456789012:role/jit', role_duration_seconds: 600 } }] },
      /tenants\.0\.aws\.role_duration_seconds/,
    ],
  ];
  for (const url of ['http://idp.example.com/jwks.json', 'http://10.0.0.1/jwks.json', 'ftp://idp.example.com/jwks.json']) {
    bad.push([`a jwks_url that is not https (${url})`, { tenants: [{ ...tenant, auth: { issuer: 'x', audience: 'y', jwks_url: url } }] }, /tenants\.0\.auth\.jwks_url: .*https/]);
  }
  for (const [what, content, field] of bad) {
    it(`refuses ${what}, naming the field`, () => {
      const file = write('bad.json', JSON.stringify(content));
      assert.throws(() => loadConfig(file), (err: Error) => err instanceof ConfigError && field.test(err.message) && err.message.includes(file));
    });
  }

  it('reads tenants on one instance when each lists its own accounts (accounts_only)', () => {
    const shared = {
      tenants: [
        { ...tenant, accounts_only: true, accounts: { '111111111111': {} } },
        { ...neighbour, accounts_only: true, accounts: { '333333333333': { environment: 'production' } } },
      ],
    };
    const config = loadConfig(write('shared.json', JSON.stringify(shared)));
    assert.deepEqual(config.tenants.map((t) => Object.keys(t.accounts)), [['111111111111'], ['333333333333']]);
  });

  it('reads grantable groups: name, id, environment (default unknown) and what they bring', () => {
    const groups = [{ name: 'Data Admins', id: '9067a5e4-0001', brings: [{ account: '111111111111', permission_set: 'PowerUserAccess' }] }, { name: 'prod-admins', environment: 'production' }];
    const [t] = loadConfig(write('groups.json', JSON.stringify({ tenants: [{ ...tenant, groups }] }))).tenants;
    assert.deepEqual(t.groups, [
      { name: 'Data Admins', id: '9067a5e4-0001', environment: 'unknown', brings: [{ account: '111111111111', permission_set: 'PowerUserAccess' }] },
      { name: 'prod-admins', environment: 'production', brings: [] },
    ]);
    assert.deepEqual(loadConfig(write('no-groups.json', JSON.stringify({ tenants: [tenant] }))).tenants[0].groups, []);
  });

  it('reads an organization: where the accounts are, exclusions, the environment tag; tenants on one instance may each name their own OUs', () => {
    const shared = {
      tenants: [
        { ...tenant, organization: { roots_or_ous: [ORG_OU], exclude: ['222222222222', 'ou-ab12-22222222'], environment_tag: 'env', tag_reads_per_refresh: 50 } },
        { ...neighbour, accounts_only: true, accounts: { '333333333333': {} }, organization: { roots_or_ous: ['ou-ab12-33333333'] } },
      ],
    };
    const config = loadConfig(write('organization.json', JSON.stringify(shared)));
    assert.deepEqual(config.tenants[0].organization, { roots_or_ous: [ORG_OU], exclude: ['222222222222', 'ou-ab12-22222222'], environment_tag: 'env', tag_reads_per_refresh: 50 });
    assert.deepEqual(config.tenants[1].organization, { roots_or_ous: ['ou-ab12-33333333'], exclude: [], tag_reads_per_refresh: 300 });
    assert.equal(config.tenants[0].accounts_only, false, 'an organization alone restricts the targets (ownAccountsOnly), without accounts_only');
  });

  it('reads the role to assume with its external id, session name and duration', () => {
    const role = { assume_role_arn: 'arn:aws:iam::210987654321:role/jit-access', external_id: 'tenant-7f3a', role_session_name: 'jit-prod', role_duration_seconds: 1800 };
    const config = loadConfig(write('role.json', JSON.stringify({ tenants: [{ ...tenant, aws: { ...tenant.aws, ...role } }] })));
    assert.deepEqual(config.tenants[0].aws, { ...tenant.aws, ...role, revoke_sessions: false, limits: { calls_per_second: 20, assignment_operations_in_flight: 10, reconcile_share: 0.25 } });
  });

  it('accepts a jwks_url over https, and over plain http only on a loopback address', () => {
    for (const url of ['https://idp.example.com/.well-known/jwks.json', 'http://127.0.0.1:8081/jwks.json', 'http://localhost/jwks.json', 'http://[::1]:9000/jwks.json']) {
      const config = loadConfig(write('jwks-url.json', JSON.stringify({ tenants: [{ ...tenant, auth: { issuer: 'x', audience: 'y', jwks_url: url } }] })));
      assert.equal(config.tenants[0].auth.jwks_url, url);
    }
  });

  it('refuses a file that is not YAML, and a missing ACCESS_CONFIG', () => {
    assert.throws(() => loadConfig(write('broken.yaml', 'tenants: [\n')), ConfigError);
    assert.throws(() => loadConfig(''), /ACCESS_CONFIG/);
  });

  it('signs cursors with the deployment key: ACCESS_CURSOR_KEY, else one derived from the tenants file (the same for every process)', () => {
    const one = loadConfig(write('cursor-a.json', JSON.stringify({ tenants: [tenant] })));
    const again = loadConfig(write('cursor-b.json', JSON.stringify({ tenants: [tenant] })));
    const other = loadConfig(write('cursor-c.json', JSON.stringify({ tenants: [neighbour] })));
    assert.deepEqual(cursorKeyOf(one, undefined), cursorKeyOf(again, undefined), 'two processes reading one file agree');
    assert.notDeepEqual(cursorKeyOf(one, undefined), cursorKeyOf(other, undefined));
    const given = 'k'.repeat(32);
    assert.deepEqual(cursorKeyOf(one, given), cursorKeyOf(other, given), 'the environment key wins over the file');
    assert.notDeepEqual(cursorKeyOf(one, given), cursorKeyOf(one, undefined));
    assert.throws(() => cursorKeyOf(one, 'short'), (err: Error) => err instanceof ConfigError && /ACCESS_CURSOR_KEY: at least 32 characters/.test(err.message));
  });

  it('refuses, in one line naming the tenant and the entry, a Slack reviewer without `user` when auth.user_claim is not email', () => {
    const reviewers = { 'carol@example.com': { id: 'carol', user: 'carol.c' }, 'Dave@Example.com': { id: 'dave' } };
    const byUsername = { ...tenant, auth: { ...tenant.auth, user_claim: 'preferred_username' }, notifications: { slack: { ...slackApp, reviewers } } };
    const file = write('slack-user.json', JSON.stringify({ tenants: [byUsername] }));
    assert.throws(
      () => loadConfig(file),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message ===
          `${file}: tenants.0.notifications.slack.reviewers.dave@example.com.user: tenant "example" (2489e9ad-2ee2-8e00-8ec9-32d5f69181c0) finds users by auth.user_claim "preferred_username", so its Slack reviewer "dave@example.com" needs user: (the value of that claim in their tokens)`,
    );
    const named = { ...byUsername, notifications: { slack: { ...slackApp, reviewers: { ...reviewers, 'Dave@Example.com': { id: 'dave', user: 'dave.d' } } } } };
    assert.deepEqual(Object.keys(loadConfig(write('slack-user-ok.json', JSON.stringify({ tenants: [named] }))).tenants[0].notifications.slack!.reviewers), ['carol@example.com', 'dave@example.com']);
    // With the default (email), the email is the user.
    assert.ok(loadConfig(write('slack-email.json', JSON.stringify({ tenants: [{ ...tenant, notifications: { slack: { ...slackApp, reviewers } } }] }))));
  });
});
