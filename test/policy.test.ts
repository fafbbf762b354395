import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPolicySet, MEMO_BYTES, PolicyLoadError, type PolicyRequest, type PolicySet } from '../src/policy';
import { heapUsedAfterGc, MiB } from './support/heap';

const POLICIES = path.resolve(__dirname, '../../policies');

function req(overrides: Partial<Omit<PolicyRequest, 'context'>> & { context?: Partial<PolicyRequest['context']> } = {}): PolicyRequest {
  return {
    principal: { id: 'alice', email: 'alice@example.com', groups: [] },
    action: 'request',
    accountId: '123456789012',
    accountEnvironment: 'staging',
    ...overrides,
    // A reason, when there is one, that says something (policies/administrator.cedar refuses one that does not).
    context: { role: 'ReadOnlyAccess', duration_seconds: 3600, has_reason: false, has_ticket_attachment: false, reason_length: overrides.context?.has_reason ? 20 : 0, ...overrides.context },
  };
}

const engineer = { id: 'bob', email: 'bob@example.com', groups: ['engineering'] };
const platformAdmin = { id: 'carol', groups: ['platform-admins'] };

describe('policy: shipped policies', () => {
  let policies: PolicySet;
  before(() => {
    policies = loadPolicySet(POLICIES);
  });

  it('auto-activates ReadOnlyAccess for anybody', () => {
    for (const action of ['request', 'activate'] as const) {
      const d = policies.authorize(req({ action }));
      assert.deepEqual(d, { allowed: true, policyIds: ['readonly-auto-activate'], notices: [] });
    }
  });

  it('lets engineering request AdministratorAccess but not activate it', () => {
    const context = { role: 'AdministratorAccess', has_reason: true };
    const requested = policies.authorize(req({ principal: engineer, context }));
    assert.equal(requested.allowed, true);
    assert.deepEqual(requested.policyIds, ['admin-request-needs-review']);
    assert.deepEqual(requested.notices, ['AdministratorAccess needs approval by a member of platform-admins.']);

    const activated = policies.authorize(req({ principal: engineer, action: 'activate', context }));
    assert.deepEqual(activated, { allowed: false, policyIds: [], notices: [] });
  });

  it('needs two approvals for AdministratorAccess on production accounts, one elsewhere', () => {
    const context = { role: 'AdministratorAccess', has_reason: true, duration_seconds: 600 };
    const production = policies.authorize(req({ principal: engineer, accountEnvironment: 'production', context }));
    assert.deepEqual(production.policyIds, ['admin-request-needs-review', 'admin-production-two-approvals']);
    assert.equal(policies.approvalsRequired(production.policyIds), 2);
    const staging = policies.authorize(req({ principal: engineer, context }));
    assert.equal(policies.approvalsRequired(staging.policyIds), 1);
  });

  it('answers a request asked again from memory, never one that differs in any input, and none can change it', () => {
    const context = { role: 'AdministratorAccess', has_reason: true };
    const asks = [
      req({ principal: engineer, context }),
      req({ principal: { ...engineer, groups: ['sales'] }, context }),
      req({ principal: engineer, context: { ...context, has_reason: false } }),
      req({ principal: engineer, context, accountEnvironment: 'production' }),
      req({ principal: engineer, action: 'activate', context }),
    ];
    const first = asks.map((r) => policies.authorize(r));
    assert.deepEqual(first.map((d) => d.allowed), [true, false, false, true, false]);
    // Asked again, in another order: each the same answer as the first time.
    for (const i of [4, 2, 0, 3, 1]) assert.deepEqual(policies.authorize(asks[i]), first[i]);
    assert.throws(() => (first[0].policyIds as string[]).push('tampered'), TypeError);
    assert.deepEqual(policies.authorize(asks[0]).policyIds, ['admin-request-needs-review']);
  });

  it('remembers decisions in a bounded number of bytes, however large the requests', function () {
    this.timeout(120_000);
    const memo = loadPolicySet(POLICIES);
    const id = 'x'.repeat(128 * 1024);
    const before = heapUsedAfterGc();
    // 400 requests of 128 KB each (a principal id as large as a token may carry): 51 MB if each were kept.
    for (let i = 0; i < 400; i++) assert.equal(memo.authorize(req({ principal: { id: `${i}${id}`, groups: [] } })).allowed, true);
    const held = heapUsedAfterGc() - before;
    assert.ok(held < 2 * MEMO_BYTES, `the memo holds ${Math.round(held / MiB)} MiB`);
    const latest = req({ principal: { id: 'dave', groups: [] } });
    assert.equal(memo.authorize(latest), memo.authorize(latest), 'still a memo');
  });

  it('does not let others request AdministratorAccess', () => {
    const d = policies.authorize(req({ principal: { id: 'dave', groups: ['sales'] }, context: { role: 'AdministratorAccess', has_reason: true } }));
    assert.deepEqual(d, { allowed: false, policyIds: [], notices: [] });
  });

  it('caps production accounts at one hour and says so', () => {
    const base = { accountEnvironment: 'production' };
    assert.equal(policies.authorize(req({ ...base, context: { duration_seconds: 3600 } })).allowed, true);
    for (const action of ['request', 'activate'] as const) {
      const d = policies.authorize(req({ ...base, action, context: { duration_seconds: 3601 } }));
      assert.deepEqual(d, {
        allowed: false,
        policyIds: ['production-max-1h'],
        notices: ['Production accounts allow at most 1 hour (3600 seconds).'],
      });
    }
    assert.equal(policies.authorize(req({ context: { duration_seconds: 7200 } })).allowed, true, 'non-production has no cap');
  });

  it('treats an account of unknown environment like any account that is not production', () => {
    const unknown = { accountEnvironment: 'unknown' };
    assert.deepEqual(policies.authorize(req({ ...unknown, action: 'activate', context: { duration_seconds: 7200 } })), {
      allowed: true,
      policyIds: ['readonly-auto-activate'],
      notices: [],
    });
    assert.equal(policies.authorize(req({ ...unknown, principal: engineer, action: 'activate', context: { role: 'AdministratorAccess', has_reason: true } })).allowed, false);
  });

  it('denies AdministratorAccess without a reason, with a notice', () => {
    const d = policies.authorize(req({ principal: engineer, context: { role: 'AdministratorAccess', has_reason: false } }));
    assert.deepEqual(d, {
      allowed: false,
      policyIds: ['admin-requires-reason'],
      notices: ['AdministratorAccess needs a reason (justification.reason).'],
    });
  });

  it('reports every forbid that applies', () => {
    const d = policies.authorize(req({
      principal: engineer,
      accountEnvironment: 'production',
      context: { role: 'AdministratorAccess', has_reason: false, duration_seconds: 7200 },
    }));
    assert.equal(d.allowed, false);
    assert.deepEqual(d.policyIds, ['admin-requires-reason', 'production-max-1h']);
    assert.equal(d.notices.length, 2);
  });

  it('requires a ticket for PowerUserAccess', () => {
    const without = policies.authorize(req({ principal: engineer, action: 'activate', context: { role: 'PowerUserAccess' } }));
    assert.deepEqual(without, {
      allowed: false,
      policyIds: ['power-user-needs-ticket'],
      notices: ['PowerUserAccess needs a ticket attachment (e.g. OPS-123 or an issue URL).'],
    });
    const withTicket = policies.authorize(req({ principal: engineer, action: 'activate', context: { role: 'PowerUserAccess', has_ticket_attachment: true } }));
    assert.deepEqual(withTicket.policyIds, ['power-user-engineering']);
    assert.equal(withTicket.allowed, true);
    const outsider = policies.authorize(req({ action: 'activate', context: { role: 'PowerUserAccess', has_ticket_attachment: true } }));
    assert.equal(outsider.allowed, false);
  });

  it('lets platform-admins review admin and read-only requests, and revoke', () => {
    for (const role of ['AdministratorAccess', 'ReadOnlyAccess']) {
      const d = policies.authorize(req({ principal: platformAdmin, action: 'review', context: { role } }));
      assert.deepEqual(d, { allowed: true, policyIds: ['admin-review-by-platform-admins'], notices: [] });
    }
    assert.equal(policies.authorize(req({ principal: platformAdmin, action: 'review', context: { role: 'PowerUserAccess' } })).allowed, false);
    assert.equal(policies.authorize(req({ principal: engineer, action: 'review', context: { role: 'AdministratorAccess' } })).allowed, false);
    assert.equal(policies.authorize(req({ principal: platformAdmin, action: 'revoke', context: { role: 'PowerUserAccess' } })).allowed, true);
    assert.equal(policies.authorize(req({ principal: engineer, action: 'revoke' })).allowed, false);
  });

  it('lets on-call break the glass for any role, for at most one hour, and nobody else', () => {
    const onCall = { id: 'olga', groups: ['on-call'] };
    const context = { role: 'AdministratorAccess', has_reason: true, break_glass: true };
    for (const action of ['request', 'activate'] as const) {
      assert.deepEqual(policies.authorize(req({ principal: onCall, action, context })).policyIds, ['break-glass-on-call']);
      assert.equal(policies.authorize(req({ principal: onCall, action, context: { ...context, break_glass: false } })).allowed, false);
      assert.equal(policies.authorize(req({ principal: engineer, action: 'activate', context })).allowed, false);
    }
    const long = policies.authorize(req({ principal: onCall, action: 'activate', context: { ...context, duration_seconds: 3601 } }));
    assert.equal(long.allowed, false);
    assert.deepEqual(long.notices, ['Break-glass access lasts at most one hour (3600 seconds); ask for longer through review.']);
  });

  it('tolerates a principal without email and with repeated groups', () => {
    const d = policies.authorize(req({ principal: { id: 'x', groups: ['engineering', 'engineering'] }, context: { role: 'PowerUserAccess', has_ticket_attachment: true } }));
    assert.equal(d.allowed, true);
  });

  it('rejects a fractional duration instead of guessing', () => {
    assert.throws(() => policies.authorize(req({ context: { duration_seconds: 1.5 } })), TypeError);
  });
});

describe('policy: an environment the tenant does not know', () => {
  it('can be forbidden by a policy, with its notice', () => {
    const policies = loadPolicySet(path.resolve(__dirname, '../../test/fixtures/quota-policies'));
    assert.equal(policies.authorize(req({ accountEnvironment: 'staging' })).allowed, true);
    assert.deepEqual(policies.authorize(req({ accountEnvironment: 'unknown' })), {
      allowed: false,
      policyIds: ['quota-unknown-account'],
      notices: ["This tenant does not know that account's environment: ask an operator to list it under accounts."],
    });
  });
});

describe('policy: evaluation errors', () => {
  it('denies when a policy fails to evaluate, and keeps its notice', () => {
    const dir = folder({
      'schema.cedarschema': fs.readFileSync(path.join(POLICIES, 'schema.cedarschema'), 'utf8'),
      'allow.cedar': '@id("allow") permit(principal, action, resource);',
      'overflow.cedar': '@id("overflow") @advice("Too long.")\nforbid(principal, action, resource) when { context.duration_seconds * 9223372036854775807 > 0 };',
    });
    const d = loadPolicySet(dir).authorize(req({ context: { duration_seconds: 2 } }));
    assert.deepEqual(d, { allowed: false, policyIds: ['allow', 'overflow'], notices: ['Too long.'] });
  });
});

describe('policy: scheduled calls', () => {
  it('sees context.scheduled and context.starts_in_seconds: a start more than a day ahead can be sent to review', () => {
    const dir = folder({
      'schema.cedarschema': fs.readFileSync(path.join(POLICIES, 'schema.cedarschema'), 'utf8'),
      'allow.cedar': '@id("allow") permit(principal, action, resource);',
      'ahead.cedar': '@id("far-ahead") @advice("Starts more than a day ahead need review.")\nforbid(principal, action == Action::"activate", resource) when { context.scheduled && context.starts_in_seconds > 86400 };',
    });
    const set = loadPolicySet(dir);
    const activate = (context: Partial<PolicyRequest['context']>) => set.authorize(req({ action: 'activate', context })).allowed;
    assert.equal(activate({}), true, 'not scheduled: 0 and false');
    assert.equal(activate({ scheduled: true, starts_in_seconds: 3600 }), true);
    assert.equal(activate({ scheduled: true, starts_in_seconds: 2 * 86400 }), false);
  });
});

describe('policy: accounts in AWS Organizations', () => {
  const schema = fs.readFileSync(path.join(POLICIES, 'schema.cedarschema'), 'utf8');
  const prodOu = 'ou-ab12-prod0001';
  const payments = { name: 'payments-prod', tags: { env: 'production', team: 'payments' }, ou_path: ['r-ab12', 'ou-ab12-work0001', prodOu, 'ou-ab12-paym0001'] };
  const sandbox = { name: 'sandbox', tags: { env: 'development' }, ou_path: ['r-ab12', 'ou-ab12-work0001', 'ou-ab12-dev00001'] };
  const policies = () =>
    loadPolicySet(
      folder({
        'schema.cedarschema': schema,
        'allow.cedar': '@id("allow") permit(principal, action, resource);',
        'org.cedar': [
          `@id("prod-ou") @advice("Under prod.") forbid(principal, action == Action::"activate", resource in AWS::OrgUnit::"${prodOu}");`,
          '@id("restricted") forbid(principal, action == Action::"request", resource) when { resource.tags.contains({key: "data-classification", value: "restricted"}) };',
          '@id("data-names") forbid(principal, action == Action::"request", resource) when { resource.name like "data-*" };',
        ].join('\n'),
      }),
    );

  it('sees an account in every OU above it (`resource in AWS::OrgUnit`, nested), its tags and its name', () => {
    const set = policies();
    assert.deepEqual(set.authorize(req({ action: 'activate', account: payments })), { allowed: false, policyIds: ['prod-ou'], notices: ['Under prod.'] });
    assert.equal(set.authorize(req({ action: 'activate', account: sandbox })).allowed, true);
    assert.equal(set.authorize(req({ account: { ...sandbox, tags: { 'data-classification': 'restricted' } } })).allowed, false);
    assert.equal(set.authorize(req({ account: { ...sandbox, name: 'data-lake' } })).allowed, false);
    assert.equal(set.authorize(req({ action: 'activate' })).allowed, true, 'an account only listed in the config: no OUs, no tags, name ""');
  });

  it('puts accounts in one class for the catalogue unless what a policy reads tells them apart', () => {
    const set = policies();
    const classOf = (account: typeof sandbox) => set.accountClass('123456789012', 'staging', account);
    // The same name and tags, and in no OU a policy names: one class, though their OUs differ.
    assert.equal(classOf({ ...sandbox, ou_path: ['r-ab12', 'ou-ab12-othr0001'] }), classOf(sandbox));
    assert.notEqual(classOf(payments), classOf(sandbox), 'under prod, which a policy names');
    assert.notEqual(classOf({ ...sandbox, name: 'data-lake' }), classOf(sandbox), 'a policy reads the name');
  });

  it('decides once for accounts no policy tells apart, and anew for each account a policy can tell', () => {
    const set = loadPolicySet(
      folder({
        'schema.cedarschema': schema,
        'allow.cedar': '@id("allow") permit(principal, action, resource);',
        'org.cedar': [
          `@id("prod-ou") forbid(principal, action == Action::"activate", resource in AWS::OrgUnit::"${prodOu}");`,
          '@id("data-names") forbid(principal, action == Action::"activate", resource) when { resource.name like "data-*" };',
          '@id("one-account") forbid(principal, action == Action::"activate", resource == Account::"999999999999");',
        ].join('\n'),
      }),
    );
    const activate = (accountId: string, account: typeof sandbox, accountEnvironment = 'staging') => set.authorize(req({ action: 'activate', accountId, accountEnvironment, account }));
    const first = activate('111111111111', sandbox);
    assert.equal(first.allowed, true);
    // Another id, other tags (no policy reads them), other OUs no policy names: the same decision, from the memo.
    assert.equal(activate('222222222222', { ...sandbox, tags: { env: 'other' }, ou_path: ['r-ab12', 'ou-ab12-othr0001'] }), first);
    // Each of these differs in what a policy reads: decided, and decided right, after the first was remembered.
    assert.deepEqual(activate('333333333333', payments), { allowed: false, policyIds: ['prod-ou'], notices: [] });
    assert.deepEqual(activate('444444444444', { ...sandbox, name: 'data-lake' }), { allowed: false, policyIds: ['data-names'], notices: [] });
    assert.deepEqual(activate('999999999999', sandbox), { allowed: false, policyIds: ['one-account'], notices: [] });
    // A named account is still told apart by what it is: moved under prod, it is decided again.
    assert.deepEqual(activate('999999999999', payments), { allowed: false, policyIds: ['prod-ou', 'one-account'], notices: [] });
    assert.notEqual(activate('555555555555', sandbox, 'production'), first, 'another environment is another request');
    assert.equal(activate('555555555555', sandbox, 'production').allowed, true);
  });

  it('keeps a schema from before organisations working: its accounts are sent with their environment alone', () => {
    const old = schema
      .replace(/namespace AWS \{[\s\S]*?\n\}\n/, '')
      .replace(/entity Account in \[AWS::OrgUnit\] \{[\s\S]*?\n\};/, 'entity Account {\n  environment: String,\n};')
      .replace('resource: [Account, AWS::IdentityStoreGroup]', 'resource: Account');
    assert.doesNotMatch(old, /OrgUnit|tags/);
    const set = loadPolicySet(folder({ 'schema.cedarschema': old, 'allow.cedar': '@id("allow") permit(principal, action, resource) when { resource.environment == "staging" };' }));
    assert.equal(set.authorize(req({ account: payments })).allowed, true);
  });
});

describe('policy: loading a folder', () => {
  const schema = fs.readFileSync(path.join(POLICIES, 'schema.cedarschema'), 'utf8');

  function loadError(files: Record<string, string>): string {
    const dir = folder({ 'schema.cedarschema': schema, ...files });
    try {
      loadPolicySet(dir);
    } catch (e) {
      assert.ok(e instanceof PolicyLoadError, `expected PolicyLoadError, got ${e}`);
      return e.message.replaceAll(dir + path.sep, '');
    }
    assert.fail('loadPolicySet accepted a bad folder');
  }

  const ok = '@id("ok")\npermit(principal, action == Action::"request", resource);\n';

  it('is not fooled by `;` or `//` inside strings and comments', () => {
    const dir = folder({
      'schema.cedarschema': schema,
      'a.cedar': '// a comment; with "quotes\n@id("semi;colon") @advice("Say \\"hi\\"; // not a comment")\npermit(principal, action, resource) when { context.role like "*;*" };\n',
      'b.cedar': ok + '// trailing comment; no policy\n',
    });
    const d = loadPolicySet(dir).authorize(req({ action: 'activate', context: { role: 'a;b' } }));
    assert.deepEqual(d, { allowed: true, policyIds: ['semi;colon'], notices: ['Say "hi"; // not a comment'] });
  });

  it('names file, line and column of a syntax error', () => {
    const msg = loadError({
      'a.cedar': ok,
      'b.cedar': '// comment with ünïcode\n@id("b")\npermit(principal, action, resource)\n  when { context.role == };\n',
    });
    assert.match(msg, /^b\.cedar:4:26: .*unexpected token/);
  });

  it('names file and line of a schema type error', () => {
    const msg = loadError({
      'a.cedar': ok + '\n@id("typo")\npermit(principal, action == Action::"request", resource)\nwhen { resource.enviroment == "production" };\n',
    });
    assert.match(msg, /^a\.cedar:6:8: .*attribute `enviroment` on entity type `(Account|AWS::IdentityStoreGroup)` not found/);
  });

  it('requires @id on every policy', () => {
    const msg = loadError({ 'a.cedar': ok + '\n// no id\npermit(principal, action, resource);\n' });
    assert.match(msg, /^a\.cedar:5:1: policy has no @id/);
  });

  it('requires @id to be unique across files', () => {
    const msg = loadError({ 'a.cedar': ok, 'b.cedar': '\n\n' + ok });
    assert.match(msg, /^b\.cedar:3:1: duplicate @id\("ok"\), first used at .*a\.cedar:1:1/);
  });

  it('names the schema file when the schema is broken', () => {
    const dir = folder({ 'schema.cedarschema': schema.replace('duration_seconds: Long', 'duration_seconds: Lung'), 'a.cedar': ok });
    assert.throws(() => loadPolicySet(dir), (e: Error) => e instanceof PolicyLoadError && /schema\.cedarschema:\d+:\d+: .*Lung/.test(e.message));
  });

  it('names the schema file when it does not fit the requests the service sends', () => {
    const dir = folder({ 'schema.cedarschema': schema.replace('has_reason: Bool,', 'has_reason: Bool, extra: String,'), 'a.cedar': ok });
    assert.throws(() => loadPolicySet(dir), (e: Error) => e instanceof PolicyLoadError && /schema\.cedarschema: does not fit/.test(e.message));
  });

  it('names the line of a template, which the service cannot use', () => {
    const msg = loadError({ 'a.cedar': ok + '\n@id("t")\npermit(principal == ?principal, action, resource);\n' });
    assert.match(msg, /^a\.cedar:5:21: .*template/);
  });

  it('requires @approvals to be a whole number of at least 1', () => {
    for (const bad of ['0', 'two', '-1', '1.5']) {
      const msg = loadError({ 'a.cedar': `@id("ok") @approvals("${bad}")\npermit(principal, action, resource);\n` });
      assert.match(msg, new RegExp(`^a\\.cedar:1:1: @approvals\\("${bad.replace('.', '\\.')}"\\) must be a whole number`), msg);
    }
  });

  it('requires exactly one schema', () => {
    const dir = folder({ 'a.cedar': ok });
    assert.throws(() => loadPolicySet(dir), /exactly one \.cedarschema/);
  });
});

const made: string[] = [];
after(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder holding exactly `files`. */
function folder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'policy-test-'));
  made.push(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

describe('policy: group grants', () => {
  const schema = fs.readFileSync(path.join(POLICIES, 'schema.cedarschema'), 'utf8');
  const group = (name: string, environment = 'unknown') => req({ accountId: '', accountEnvironment: environment, group: { name, environment }, context: { role: 'member' } });

  it('sees the group as the resource (AWS::IdentityStoreGroup, by name) with its name and environment; account policies do not match it', () => {
    const set = loadPolicySet(
      folder({
        'schema.cedarschema': schema,
        'groups.cedar': [
          '@id("data-admins") permit(principal, action == Action::"request", resource == AWS::IdentityStoreGroup::"data-admins") when { context.role == "member" };',
          '@id("named") permit(principal, action == Action::"activate", resource is AWS::IdentityStoreGroup) when { resource.name like "readers-*" };',
          '@id("prod-groups") @advice("Production groups need review.") forbid(principal, action == Action::"activate", resource) when { resource.environment == "production" };',
          '@id("accounts") permit(principal, action, resource is Account);',
        ].join('\n'),
      }),
    );
    assert.equal(set.authorize(group('data-admins')).allowed, true);
    assert.equal(set.authorize(group('ops')).allowed, false, 'a permit for one group (or for accounts) allows no other group');
    assert.equal(set.authorize({ ...group('readers-eu'), action: 'activate' }).allowed, true, 'resource.name');
    assert.deepEqual(set.authorize({ ...group('readers-prod', 'production'), action: 'activate' }), { allowed: false, policyIds: ['prod-groups'], notices: ['Production groups need review.'] });
    assert.equal(set.authorize(req({})).allowed, true, 'accounts are decided as before');
  });

  it('refuses group targets, with a notice, under a schema that does not declare the group entity', () => {
    const old = schema.replace(/\n  entity IdentityStoreGroup \{[\s\S]*?\n  \};\n/, '\n').replace('resource: [Account, AWS::IdentityStoreGroup]', 'resource: Account');
    assert.doesNotMatch(old, /IdentityStoreGroup/);
    const set = loadPolicySet(folder({ 'schema.cedarschema': old, 'allow.cedar': '@id("allow") permit(principal, action, resource);' }));
    const d = set.authorize(group('data-admins'));
    assert.equal(d.allowed, false);
    assert.match(d.notices[0], /does not declare AWS::IdentityStoreGroup/);
    assert.equal(set.authorize(req({})).allowed, true);
  });
});
