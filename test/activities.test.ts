// The activities against a real moto_server on loopback (CONTRACT §7: no SDK stubs).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { CreateUserCommand, IdentitystoreClient } from '@aws-sdk/client-identitystore';
import {
  type AccountAssignmentOperationStatus,
  CreateAccountAssignmentCommand,
  CreatePermissionSetCommand,
  ListAccountAssignmentsCommand,
  ListInstancesCommand,
  SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { ApplicationFailure } from '@temporalio/common';
import type { AppConfig } from '../src/config';
import { createWorkerMetrics } from '../src/metrics';
import { createActivities, type AssignmentRef, type GrantActivities } from '../src/activities';
import { afterDeletions, asDeletion, pacer, semaphore } from '../src/activities/aws';
import { settle } from '../src/activities/poll';
import { FaultProxy } from './support/fault-proxy';

const TENANT = '6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b';
const REGION = 'us-east-1';
const ACCOUNT = '111122223333';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

// Kept private to this file: scripts/stack.ts starts its own moto for the full stack.
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function startMoto(): Promise<{ endpoint: string; process: ChildProcess }> {
  const port = await freePort();
  // Its own process group, so `after` can stop the pyenv shim and the Python under it together.
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore', detached: true });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${endpoint}/moto-api/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('moto_server did not start within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Fixed random ids, so the instance ARN and identity store id are the same on every run.
  const seeded = await fetch(`${endpoint}/moto-api/seed?a=42`, { method: 'POST' });
  assert.ok(seeded.ok, `seeding moto: HTTP ${seeded.status}`);
  return { endpoint, process: child };
}

function isFailure(type: string, nonRetryable: boolean) {
  return (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type);
    assert.equal(err.nonRetryable, nonRetryable);
    return true;
  };
}

describe('activities against moto', function () {
  this.timeout(60_000);

  let moto: ChildProcess | undefined;
  let sso: SSOAdminClient;
  let identity: IdentitystoreClient;
  let instanceArn: string;
  let identityStoreId: string;
  let motoEndpoint: string;
  let activities: GrantActivities;
  const userIds = new Map<string, string>();
  const permissionSetArns = new Map<string, string>();

  /** The test tenant on moto's instance, with `aws` fields added or replaced. */
  function configWith(aws: Partial<AppConfig['tenants'][number]['aws']>): AppConfig {
    return {
      tenants: [
        {
          id: TENANT,
          name: 'Moto',
          auth: { issuer: 'https://issuer.invalid', audience: 'jit-access', jwks_file: '/dev/null', required_claims: {}, clock_tolerance_seconds: 30, user_claim: 'email' },
          aws: {
            region: REGION,
            sso_instance_arn: instanceArn,
            identity_store_id: 'd-0123456789',
            revoke_sessions: false,
            limits: { calls_per_second: 20, assignment_operations_in_flight: 10, reconcile_share: 0.25 },
            ...aws,
          },
          policies: './policies',
          grants: { default_duration_seconds: 3600, max_duration_seconds: 43200, pending_request_ttl_seconds: 86400, max_open_per_principal: 50, max_schedule_ahead_seconds: 2592000, ensure_rate_per_minute: 60, ensure_burst: 20, read_rate_per_minute: 600, read_burst: 120 },
          notifications: { webhooks: [], expiry_warning_seconds: 300 },
          accounts: {},
          accounts_only: false,
          groups: [],
        },
      ],
    };
  }

  before(async function () {
    const started = await startMoto();
    moto = started.process;
    motoEndpoint = started.endpoint;
    const clientConfig = { region: REGION, endpoint: started.endpoint, credentials: CREDENTIALS };
    sso = new SSOAdminClient(clientConfig);
    identity = new IdentitystoreClient(clientConfig);

    const { Instances } = await sso.send(new ListInstancesCommand({}));
    assert.equal(Instances?.length, 1, 'moto makes one instance per account and region');
    instanceArn = Instances[0].InstanceArn!;
    identityStoreId = Instances[0].IdentityStoreId!;
    motoEndpoint = started.endpoint;

    const users = [
      { userName: 'alice@example.com', email: 'alice@example.com', given: 'Alice', family: 'Archer' },
      { userName: 'bob@example.com', email: 'bob@example.com', given: 'Bob', family: 'Baker' },
      // User name is not the email: found by the emails.value fallback.
      { userName: 'carol', email: 'carol@example.com', given: 'Carol', family: 'Cooper' },
    ];
    for (const u of users) {
      const { UserId } = await identity.send(
        new CreateUserCommand({
          IdentityStoreId: identityStoreId,
          UserName: u.userName,
          DisplayName: `${u.given} ${u.family}`,
          Name: { GivenName: u.given, FamilyName: u.family },
          Emails: [{ Value: u.email, Primary: true }],
        }),
      );
      userIds.set(u.email, UserId!);
    }
    for (const name of ['ReadOnlyAccess', 'AdministratorAccess']) {
      const { PermissionSet } = await sso.send(new CreatePermissionSetCommand({ InstanceArn: instanceArn, Name: name }));
      permissionSetArns.set(name, PermissionSet!.PermissionSetArn!);
    }

    activities = createActivities(configWith({ identity_store_id: identityStoreId, endpoint: started.endpoint }));
  });

  after(function () {
    if (moto?.pid) process.kill(-moto.pid, 'SIGTERM');
  });

  async function assignmentsOf(role: string, accountId = ACCOUNT) {
    const { AccountAssignments } = await sso.send(
      new ListAccountAssignmentsCommand({ InstanceArn: instanceArn, AccountId: accountId, PermissionSetArn: permissionSetArns.get(role) }),
    );
    return AccountAssignments ?? [];
  }

  const ref = (email: string, role = 'ReadOnlyAccess', accountId = ACCOUNT): AssignmentRef => ({
    tenantId: TENANT,
    accountId,
    role,
    principal: { id: `idp|${email}`, email },
  });

  it('moto: fixed instance, and it duplicates assignments created twice (the reason for the existence check)', async function () {
    assert.match(instanceArn, /^arn:aws:sso:::instance\/ssoins-[0-9a-z]{16}$/);
    const direct = {
      InstanceArn: instanceArn,
      TargetId: '999988887777',
      TargetType: 'AWS_ACCOUNT',
      PermissionSetArn: permissionSetArns.get('AdministratorAccess'),
      PrincipalType: 'USER',
      PrincipalId: userIds.get('bob@example.com'),
    } as const;
    const first = await sso.send(new CreateAccountAssignmentCommand(direct));
    assert.equal(first.AccountAssignmentCreationStatus?.Status, 'SUCCEEDED', 'moto finishes at once, never IN_PROGRESS');
    await sso.send(new CreateAccountAssignmentCommand(direct));
    assert.equal((await assignmentsOf('AdministratorAccess', '999988887777')).length, 2);
  });

  it('createAssignment makes exactly one assignment, also when called twice', async function () {
    const alice = ref('alice@example.com');
    assert.equal((await activities.findAssignment(alice)).exists, false);

    const t0 = performance.now();
    await activities.createAssignment(alice);
    const createMs = performance.now() - t0;
    await activities.createAssignment(alice);

    const assignments = await assignmentsOf('ReadOnlyAccess');
    assert.deepEqual(assignments.map((a) => [a.PrincipalType, a.PrincipalId]), [['USER', userIds.get('alice@example.com')]]);
    assert.deepEqual(await activities.findAssignment(alice), {
      exists: true,
      ids: { userId: userIds.get('alice@example.com'), permissionSetArn: permissionSetArns.get('ReadOnlyAccess') },
    });
    // Another user, role or account is a different assignment.
    assert.equal((await activities.findAssignment(ref('bob@example.com'))).exists, false);
    assert.equal((await activities.findAssignment(ref('alice@example.com', 'AdministratorAccess'))).exists, false);
    assert.equal((await activities.findAssignment(ref('alice@example.com', 'ReadOnlyAccess', '444455556666'))).exists, false);

    const t1 = performance.now();
    await activities.deleteAssignment(alice);
    const deleteMs = performance.now() - t1;
    console.log(`      create+poll ${createMs.toFixed(0)} ms, delete+poll ${deleteMs.toFixed(0)} ms`);
  });

  it('deleteAssignment removes it, and deleting again is fine', async function () {
    const bob = ref('bob@example.com', 'AdministratorAccess');
    await activities.createAssignment(bob);
    assert.equal((await assignmentsOf('AdministratorAccess')).length, 1);

    const t0 = performance.now();
    await activities.createAssignment(ref('bob@example.com'));
    const createMs = performance.now() - t0;
    const t1 = performance.now();
    await activities.deleteAssignment(ref('bob@example.com'));
    const deleteMs = performance.now() - t1;
    console.log(`      again: create+poll ${createMs.toFixed(0)} ms, delete+poll ${deleteMs.toFixed(0)} ms`);

    await activities.deleteAssignment(bob);
    assert.deepEqual(await assignmentsOf('AdministratorAccess'), []);
    assert.equal((await activities.findAssignment(bob)).exists, false);
    await activities.deleteAssignment(bob);
    assert.deepEqual(await assignmentsOf('AdministratorAccess'), []);
  });

  it('finds a user by email when the user name is something else', async function () {
    const carol = { ...ref('carol@example.com'), principal: { id: 'carol-in-the-idp', email: 'carol@example.com' } };
    await activities.createAssignment(carol);
    const assignments = await assignmentsOf('ReadOnlyAccess');
    assert.deepEqual(assignments.map((a) => a.PrincipalId), [userIds.get('carol@example.com')]);
    await activities.deleteAssignment(carol);
    assert.deepEqual(await assignmentsOf('ReadOnlyAccess'), []);
  });

  it("finds the user by the principal's identityStoreUser (the tenant's auth.user_claim), not by its email", async function () {
    const carol = { ...ref('carol@example.com'), principal: { id: 'c-123', email: 'bob@example.com', identityStoreUser: 'carol' } };
    await activities.createAssignment(carol);
    assert.deepEqual((await assignmentsOf('ReadOnlyAccess')).map((a) => a.PrincipalId), [userIds.get('carol@example.com')]);
    await activities.deleteAssignment(carol);
    assert.deepEqual(await assignmentsOf('ReadOnlyAccess'), []);
  });

  it('finds a permission set created after the names were cached', async function () {
    await activities.findAssignment(ref('alice@example.com'));
    const { PermissionSet } = await sso.send(new CreatePermissionSetCommand({ InstanceArn: instanceArn, Name: 'BillingAccess' }));
    permissionSetArns.set('BillingAccess', PermissionSet!.PermissionSetArn!);
    await activities.createAssignment(ref('alice@example.com', 'BillingAccess'));
    assert.equal((await assignmentsOf('BillingAccess')).length, 1);
    await activities.deleteAssignment(ref('alice@example.com', 'BillingAccess'));
  });

  it('fails without retry on an unknown permission set, user, tenant or account id', async function () {
    await assert.rejects(activities.createAssignment(ref('alice@example.com', 'NoSuchAccess')), isFailure('PermissionSetNotFound', true));
    await assert.rejects(activities.createAssignment(ref('alice@example.com', 'NoSuchAccess')), /Permission set "NoSuchAccess" does not exist in arn:aws:sso:::instance\//);
    await assert.rejects(activities.createAssignment(ref('nobody@example.com')), isFailure('UserNotFound', true));
    await assert.rejects(activities.findAssignment({ ...ref('alice@example.com'), tenantId: '00000000-0000-4000-8000-000000000000' }), isFailure('UnknownTenant', true));
    await assert.rejects(activities.createAssignment(ref('alice@example.com', 'ReadOnlyAccess', '1234')), isFailure('InvalidAccountId', true));
    assert.deepEqual(await assignmentsOf('ReadOnlyAccess'), []);
  });

  it('deletes by the ids findAssignment resolved, even after the user can no longer be found by name', async function () {
    const carol = ref('carol@example.com', 'AdministratorAccess', '444444444444');
    const { ids } = await activities.findAssignment(carol);
    await activities.createAssignment({ ...carol, ids });
    assert.equal((await assignmentsOf('AdministratorAccess', '444444444444')).length, 1);
    // As if the user had been renamed in the identity store since the grant began.
    const renamed = { ...carol, principal: { id: 'carol', email: 'carol.new@example.com' } };
    await activities.deleteAssignment({ ...renamed, ids });
    assert.deepEqual(await assignmentsOf('AdministratorAccess', '444444444444'), []);
  });

  it('deleting for a user or permission set that no longer exists succeeds at once, deleting nothing (no access can remain)', async function () {
    const proxy = await FaultProxy.start();
    try {
      await proxy.upstream(motoEndpoint);
      const counted = createActivities(configWith({ identity_store_id: identityStoreId, endpoint: proxy.url }));
      await counted.deleteAssignment(ref('nobody@example.com'));
      await counted.deleteAssignment(ref('alice@example.com', 'NoSuchAccess'));
      // One answer each, no retry and no wait for an assignment that cannot exist.
      assert.equal(await proxy.count('DeleteAccountAssignment'), 0);
      assert.equal(await proxy.count('ListAccountAssignments'), 0);
    } finally {
      await proxy.close();
    }
  });

  it('a deletion waiting for an in-flight slot goes before the creations that waited longer', async function () {
    this.timeout(120_000);
    const proxy = await FaultProxy.start();
    try {
      await proxy.upstream(motoEndpoint);
      // One assignment operation at a time, and every creation takes 3 s at the provider.
      await proxy.on('CreateAccountAssignment', { delayMs: 3000 });
      const limits = { calls_per_second: 20, assignment_operations_in_flight: 1, reconcile_share: 0.25 };
      const metrics = createWorkerMetrics();
      const held = createActivities(configWith({ identity_store_id: identityStoreId, endpoint: proxy.url, limits }), { metrics });
      const waitingForASlot = async () => (await metrics.operationsWaiting.get()).values.reduce((sum, v) => sum + v.value, 0);
      const bob = (accountId: string) => ref('bob@example.com', 'ReadOnlyAccess', accountId);
      // What the deletion removes was made beforehand, past the proxy.
      await activities.createAssignment(bob('777700000009'));
      const { ids } = await activities.findAssignment(bob('777700000009'));

      const done: string[] = [];
      const track = (name: string, work: Promise<unknown>) => work.then(() => done.push(name));
      const creations = [1, 2, 3].map((i) => track(`creation ${i}`, held.createAssignment({ ...bob(`77770000000${i}`), ids })));
      // One creation holds the slot; the other two have looked and wait for it.
      for (let waited = 0; (await proxy.count('CreateAccountAssignment')) < 1 || (await waitingForASlot()) < 2; waited += 50) {
        assert.ok(waited < 30_000, 'the creations did not start');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const deletion = track('deletion', held.deleteAssignment({ ...bob('777700000009'), ids }));
      await Promise.all([...creations, deletion]);

      // Whichever creation looked first holds the slot and ends first; the other two (in the order
      // their lookups answered) end after the deletion that came last.
      assert.equal(done[1], 'deletion', done.join(', '));
      assert.deepEqual([done[0], ...done.slice(2)].sort(), ['creation 1', 'creation 2', 'creation 3']);
      assert.deepEqual(await assignmentsOf('ReadOnlyAccess', '777700000009'), []);
      for (const i of [1, 2, 3]) assert.equal((await assignmentsOf('ReadOnlyAccess', `77770000000${i}`)).length, 1);
    } finally {
      await proxy.close();
    }
  });

  it('reaches an instance in another account through the tenant\'s role, with its external id and session name', async function () {
    // The instance is in the management account; the worker's own keys are in moto's default
    // account. moto routes a call by its access key, so only the role's keys reach this instance.
    const MANAGEMENT = '210987654321';
    const inManagement = {
      region: REGION,
      endpoint: motoEndpoint,
      credentials: fromTemporaryCredentials({
        masterCredentials: CREDENTIALS,
        params: { RoleArn: `arn:aws:iam::${MANAGEMENT}:role/test-setup`, RoleSessionName: 'test-setup' },
        clientConfig: { region: REGION, endpoint: motoEndpoint },
      }),
    };
    const mgmtSso = new SSOAdminClient(inManagement);
    const { Instances } = await mgmtSso.send(new ListInstancesCommand({}));
    const [{ InstanceArn: mgmtInstance, IdentityStoreId: mgmtStore }] = Instances!;
    assert.notEqual(mgmtInstance, instanceArn, 'each moto account has its own instance');
    const { UserId } = await new IdentitystoreClient(inManagement).send(
      new CreateUserCommand({ IdentityStoreId: mgmtStore, UserName: 'dave@example.com', DisplayName: 'Dave Dunn', Name: { GivenName: 'Dave', FamilyName: 'Dunn' }, Emails: [{ Value: 'dave@example.com', Primary: true }] }),
    );
    const { PermissionSet } = await mgmtSso.send(new CreatePermissionSetCommand({ InstanceArn: mgmtInstance, Name: 'BillingAccess' }));

    const roleArn = `arn:aws:iam::${MANAGEMENT}:role/jit-access-worker`;
    const viaRole = createActivities(
      configWith({ sso_instance_arn: mgmtInstance!, identity_store_id: mgmtStore!, endpoint: motoEndpoint, assume_role_arn: roleArn, external_id: 'tenant-7f3a', role_session_name: 'jit-moto' }),
    );
    const dave = ref('dave@example.com', 'BillingAccess');
    await viaRole.createAssignment(dave);
    assert.equal((await viaRole.findAssignment(dave)).exists, true);

    const { AccountAssignments } = await mgmtSso.send(
      new ListAccountAssignmentsCommand({ InstanceArn: mgmtInstance, AccountId: ACCOUNT, PermissionSetArn: PermissionSet!.PermissionSetArn }),
    );
    assert.deepEqual(AccountAssignments?.map((a) => a.PrincipalId), [UserId]);
    // moto's record of the session: one AssumeRole for the tenant (its clients are kept and its
    // credentials reused across calls), with the external id and session name from the config.
    const { sts } = (await (await fetch(`${motoEndpoint}/moto-api/data.json`)).json()) as { sts: { AssumedRole: { role_arn: string; arn: string; external_id: string | null }[] } };
    const sessions = sts.AssumedRole.filter((r) => r.role_arn === roleArn);
    assert.deepEqual(sessions.map((r) => [r.arn, r.external_id]), [[`arn:aws:sts::${MANAGEMENT}:assumed-role/jit-access-worker/jit-moto`, 'tenant-7f3a']]);

    // Without a session name of its own, CloudTrail still tells the tenants apart: the default names the tenant.
    const unnamed = createActivities(configWith({ sso_instance_arn: mgmtInstance!, identity_store_id: mgmtStore!, endpoint: motoEndpoint, assume_role_arn: roleArn }));
    assert.equal((await unnamed.findAssignment(dave)).exists, true);
    const after = (await (await fetch(`${motoEndpoint}/moto-api/data.json`)).json()) as { sts: { AssumedRole: { role_arn: string; arn: string }[] } };
    assert.deepEqual(
      after.sts.AssumedRole.filter((r) => r.role_arn === roleArn).map((r) => r.arn),
      [`arn:aws:sts::${MANAGEMENT}:assumed-role/jit-access-worker/jit-moto`, `arn:aws:sts::${MANAGEMENT}:assumed-role/jit-access-worker/jit-access-Moto`],
    );
  });
});

describe('request pacing', function () {
  it('pacer spaces calls evenly, never more than its limit in one window, and lets them through in order', async function () {
    // One call per 200 ms: wide enough that the moment a call is seen (a few ms after the pacer let
    // it go, more on two busy cores) is small beside the spacing.
    const pace = pacer(5, 1000);
    const t0 = performance.now();
    const went: { call: number; at: number }[] = [];
    await Promise.all(Array.from({ length: 16 }, (_, call) => pace().then(() => went.push({ call, at: performance.now() - t0 }))));
    assert.deepEqual(went.map((w) => w.call), [...Array(16).keys()], 'in order');
    const times = went.map((w) => w.at.toFixed(0)).join(', ');
    // A late timer catches up by at most half a spacing (100 ms), and so may the first call after an
    // idle spell; a call is seen up to 25 ms after it went.
    for (let i = 5; i < went.length; i++) assert.ok(went[i].at - went[i - 5].at >= 875, `6 calls within one window: ${times}`);
    // Evenly spaced, not in bursts of 5, and at the full rate (no spacing lost to late timers). The
    // times are seen in a process that also runs a worker and an API on two busy cores: a stall
    // delays one call, and the pacer then catches up by at most half a spacing, so a stall moves
    // one or two of the 15 gaps, not the median. 240 ms would be a sixth of the rate lost.
    const gaps = went.slice(1).map((w, i) => w.at - went[i].at).sort((x, y) => x - y);
    const median = gaps[Math.floor(gaps.length / 2)];
    assert.ok(median >= 180 && median <= 240, `median spacing ${median.toFixed(1)} ms, not 200: ${times}`);
  });

  it('pacer lets a waiting deletion go before the creations that waited longer', async function () {
    const pace = pacer(1, 100);
    const went: string[] = [];
    const call = (name: string) => pace().then(() => went.push(name));
    const first = call('creation 1'); // goes at once, and fills the window
    const queued = [call('creation 2'), call('creation 3')];
    const deletion = asDeletion(() => call('deletion'));
    await Promise.all([first, ...queued, deletion]);
    assert.deepEqual(went, ['creation 1', 'deletion', 'creation 2', 'creation 3']);
  });

  it('semaphore hands a freed slot to a waiting deletion first', async function () {
    const limit = semaphore(1);
    const went: string[] = [];
    let release!: () => void;
    const first = limit(() => new Promise<void>((resolve) => (release = resolve)));
    const run = (name: string) => limit(async () => void went.push(name));
    const queued = [run('creation 2'), run('creation 3')];
    const deletion = asDeletion(() => run('deletion'));
    release();
    await Promise.all([first, ...queued, deletion]);
    assert.deepEqual(went, ['deletion', 'creation 2', 'creation 3']);
  });

  it("the worker's audit writes wait while it deletes, go once its deletions pause, and never wait past their limit", async function () {
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const went: string[] = [];
    let endDeletion!: () => void;
    const deletion = asDeletion(() => new Promise<void>((resolve) => (endDeletion = resolve)));
    const write = afterDeletions(10_000).then(() => went.push('audit write'));
    await pause(400);
    assert.equal(went.length, 0, 'held while a deletion runs');
    endDeletion();
    await deletion.then(() => went.push('deletion'));
    await write;
    assert.deepEqual(went, ['deletion', 'audit write']);

    // Asked just after a deletion ended (as endAccess writes after its own): it goes a moment later, not at its limit.
    await asDeletion(async () => {});
    const asked = performance.now();
    await afterDeletions(10_000);
    const waited = performance.now() - asked;
    assert.ok(waited >= 200 && waited < 2_000, `waited ${waited.toFixed(0)} ms`);

    // A worker that never stops deleting holds a write no longer than its limit.
    let endLong!: () => void;
    const long = asDeletion(() => new Promise<void>((resolve) => (endLong = resolve)));
    const started = performance.now();
    await afterDeletions(300);
    assert.ok(performance.now() - started >= 290, 'waited its limit');
    endLong();
    await long;
  });

  it('semaphore keeps at most its limit running', async function () {
    const limit = semaphore(3);
    let running = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        limit(async () => {
          peak = Math.max(peak, ++running);
          await new Promise((resolve) => setTimeout(resolve, 5));
          running--;
        }),
      ),
    );
    assert.equal(peak, 3);
  });
});

// moto finishes every assignment operation at once, so the polling is checked on its own here.
describe('settle (polling an assignment operation)', function () {
  const inProgress: AccountAssignmentOperationStatus = { Status: 'IN_PROGRESS', RequestId: 'req-1' };

  it('polls with growing delays until the operation ends', async function () {
    const answers = [inProgress, inProgress, { Status: 'SUCCEEDED', RequestId: 'req-1' } as const];
    const polledAt: number[] = [];
    const t0 = Date.now();
    const status = await settle(
      inProgress,
      async (requestId) => {
        assert.equal(requestId, 'req-1');
        polledAt.push(Date.now() - t0);
        return answers.shift();
      },
      { firstDelayMs: 20, maxDelayMs: 40 },
    );
    assert.equal(status.Status, 'SUCCEEDED');
    assert.equal(polledAt.length, 3);
    // Waits of 20, 40, 40 ms: at about 20, 60 and 100 ms.
    assert.ok(polledAt[0] >= 18 && polledAt[1] >= 58 && polledAt[2] >= 98, `polled at ${polledAt}`);
  });

  it('returns a failure for the caller to judge, and does not poll a finished operation', async function () {
    const failed = { Status: 'FAILED', RequestId: 'req-2', FailureReason: 'Account is not in the organization' } as const;
    assert.deepEqual(await settle(inProgress, async () => failed, { firstDelayMs: 1 }), failed);
    assert.deepEqual(await settle(failed, async () => assert.fail('polled')), failed);
  });

  it('throws a plain (retryable) error on a status it does not know', async function () {
    await assert.rejects(settle(undefined, async () => undefined), (err: unknown) => !(err instanceof ApplicationFailure));
  });
});
