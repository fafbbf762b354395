// The audit trail (issue 13): every decision and state change as one object in the tenant's S3,
// written whatever Temporal later forgets.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { checkAuditStores } from '../src/activities/audit';
import { createLogger } from '../src/log';
import { repoRoot } from '../scripts/stack';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Connection } from '@temporalio/client';
import { auditEventSchema } from '../src/api/schemas';
import { createApi } from '../src/api/server';
import { createAuditActivities } from '../src/activities/audit';

import { loadConfig } from '../src/config';
import { AUDIT_EVENTS } from '../src/domain/audit';
import { grantWorkflowId } from '../src/domain/grant';
import { AUDIT_PREFIX } from '../scripts/stack';
import { grantEvents, headOf, storedEvents, type StoredEvent, testS3 } from './support/audit';
import { type PolicyApi, startApiWithPolicies } from './support/policy-api';
import { call, current, ensure, eventually, freshAccount, grantReaching, PRODUCTION_ACCOUNT, recordHistory, TENANT, target, tokenFor } from './support/world';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The shape docs/audit.md documents (schema 1), checked field by field. */
function assertShape({ key, event }: StoredEvent): void {
  const keys = ['schema', 'event_id', 'at', 'tenant_id', 'event', 'actor', 'principal', 'target', 'role', 'grant_id', 'access_request_id', 'details'];
  assert.deepEqual(Object.keys(event).sort(), [...keys].sort(), JSON.stringify(event));
  // The zod schema the OpenAPI document and docs/audit.md's JSON Schema are written from.
  auditEventSchema.parse(event);
  assert.equal(event.schema, 1);
  assert.match(event.event_id, UUID);
  assert.ok(AUDIT_EVENTS.includes(event.event), event.event);
  assert.equal(new Date(event.at).toISOString(), event.at);
  assert.equal(event.tenant_id, TENANT.id);
  assert.ok(['principal', 'reviewer', 'operator', 'system'].includes(event.actor.type), JSON.stringify(event.actor));
  assert.equal(typeof event.actor.id, 'string');
  assert.equal(typeof event.principal.id, 'string');
  assert.match(event.target, /^AWS::Account::\d{12}$/);
  assert.equal(typeof event.role, 'string');
  assert.equal(typeof event.details, 'object');
  assert.equal(key, `${AUDIT_PREFIX}/tenant=${TENANT.id}/date=${event.at.slice(0, 10)}/${event.event_id}.json`);
}

const names = (events: StoredEvent[]) => events.map((e) => e.event.event);

describe('audit trail', function () {
  this.timeout(120_000);

  it('an activated grant that expires: requested, activated, expired, deprovisioned, each an object under Object Lock', async () => {
    const account = freshAccount();
    const reply = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 3 }], { reason: 'look at logs' });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const grant = reply.body.grants[0];
    const events = await grantEvents(grant.id, ['requested', 'activated', 'expired', 'deprovisioned']);
    assert.deepEqual(names(events), ['requested', 'activated', 'expired', 'deprovisioned']);
    events.forEach(assertShape);
    const [requested, activated, expired] = events.map((e) => e.event);
    assert.deepEqual(requested.actor, { type: 'principal', id: 'alice' });
    assert.deepEqual(requested.principal, { id: 'alice', email: 'alice@example.com' });
    assert.equal(requested.details.reason, 'look at logs');
    assert.equal(requested.details.auto_approved, true);
    assert.equal(activated.details.preexisted, false);
    assert.equal(typeof activated.details.assignment_ids?.user_id, 'string');
    assert.deepEqual(expired.actor, { type: 'system', id: 'expiry' });
    const head = await headOf(events[1].key);
    assert.equal(head.ObjectLockMode, 'COMPLIANCE');
    assert.ok(head.ObjectLockRetainUntilDate!.getTime() > Date.now(), 'locked for object_lock_days');
    await grantReaching(grant.id, 'expired');
    await recordHistory('audit-activate-expire', grant.id);
  });

  it('a reviewed request, approved then revoked; a denied one', async () => {
    const account = freshAccount();
    const pending = (await ensure([{ target: target(account), role: 'AdministratorAccess', duration_seconds: 600 }], { reason: 'deploy fix' })).body.grants[0];
    await call('POST', `/v1/access/requests/${pending.access_request_id}/review`, { as: 'carol', body: { decision: 'approve', comment: 'go ahead' } });
    await grantReaching(pending.id, 'active');
    await call('POST', `/v1/access/grants/${pending.id}/revoke`, { as: 'alice', body: { reason: 'done' } });
    const events = await grantEvents(pending.id, ['requested', 'approved', 'activated', 'revoked', 'deprovisioned']);
    events.forEach(assertShape);
    assert.deepEqual(names(events), ['requested', 'approved', 'activated', 'revoked', 'deprovisioned']);
    const byName = Object.fromEntries(events.map((e) => [e.event.event, e.event]));
    assert.deepEqual(byName.approved.actor, { type: 'reviewer', id: 'carol' });
    assert.equal(byName.approved.details.comment, 'go ahead');
    assert.equal(byName.approved.access_request_id, pending.access_request_id);
    assert.deepEqual(byName.revoked.actor, { type: 'principal', id: 'alice' });
    assert.equal(byName.revoked.details.reason, 'done');
    await recordHistory('audit-request-approve-revoke', pending.id);

    const other = (await ensure([{ target: target(freshAccount()), role: 'AdministratorAccess' }], { reason: 'audit the other' })).body.grants[0];
    await call('POST', `/v1/access/requests/${other.access_request_id}/review`, { as: 'carol', body: { decision: 'deny', comment: 'no' } });
    const denied = await grantEvents(other.id, ['requested', 'denied']);
    assert.deepEqual(names(denied), ['requested', 'denied']);
    assert.deepEqual(denied[1].event.actor, { type: 'reviewer', id: 'carol' });
  });

  it('an extension; an operator cancelling the workflow is a revoke by an operator', async () => {
    const account = freshAccount();
    const grant = (await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }])).body.grants[0];
    await grantReaching(grant.id, 'active');
    const extended = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 900 }]);
    assert.equal(extended.body.grants[0].change, 'extended', JSON.stringify(extended.body));
    await current().temporal.workflow.getHandle(grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: target(account), role: 'ReadOnlyAccess' })).cancel();
    const events = await grantEvents(grant.id, ['requested', 'activated', 'extended', 'revoked', 'deprovisioned']);
    assert.deepEqual(names(events), ['requested', 'activated', 'extended', 'revoked', 'deprovisioned']);
    const [, , extendedEvent, revoked] = events.map((e) => e.event);
    assert.equal(extendedEvent.details.duration_seconds, 900);
    assert.deepEqual(extendedEvent.actor, { type: 'principal', id: 'alice' });
    assert.equal(revoked.actor.type, 'operator');
    await grantReaching(grant.id, 'revoked');
    await recordHistory('audit-extend-cancel', grant.id);
  });

  it('a withdrawn request, an extension request and a break-glass use are on record, each with its own request id', async () => {
    const admin = (account: string, duration_seconds: number) => [{ target: target(account), role: 'AdministratorAccess', duration_seconds }];
    // Withdrawn: the requester revokes it before anyone decides.
    const asked = (await ensure(admin(freshAccount(), 600), { reason: 'maybe later' })).body.grants[0];
    await call('POST', `/v1/access/grants/${asked.id}/revoke`, { as: 'alice', body: { reason: 'not needed' } });
    const withdrawn = await grantEvents(asked.id, ['requested', 'withdrawn']);
    assert.deepEqual(names(withdrawn), ['requested', 'withdrawn']);
    withdrawn.forEach(assertShape);
    assert.deepEqual(withdrawn[1].event.actor, { type: 'principal', id: 'alice' });

    // An extension request, approved: its own request id on the request, approval and extension.
    const account = freshAccount();
    const first = (await ensure(admin(account, 600), { reason: 'deploy' })).body.grants[0];
    await call('POST', `/v1/access/requests/${first.access_request_id}/review`, { as: 'carol', body: { decision: 'approve' } });
    await grantReaching(first.id, 'active');
    const extension = (await ensure(admin(account, 3000), { reason: 'deploy' })).body.grants[0];
    assert.equal(extension.change, 'requested', JSON.stringify(extension));
    await call('POST', `/v1/access/requests/${extension.access_request_id}/review`, { as: 'carol', body: { decision: 'approve', comment: 'longer ok' } });
    const extended = await grantEvents(first.id, ['requested', 'activated', 'extension_requested', 'extended']);
    extended.forEach(assertShape);
    const ofExtension = extended.filter((e) => e.event.access_request_id === extension.access_request_id).map((e) => e.event.event);
    // The approval and the extension it makes share one workflow time: their order by `at` is a tie.
    assert.deepEqual([...ofExtension].sort(), ['approved', 'extended', 'extension_requested']);
    assert.equal(ofExtension[0], 'extension_requested');
    await call('POST', `/v1/access/grants/${first.id}/revoke`, { as: 'alice' });

    // Break-glass: on record at once, before any reviewer looks.
    const glass = await call('POST', '/v1/access/ensure', {
      as: 'olga',
      body: { entitlements: admin(freshAccount(), 1800), justification: { reason: 'production is down' }, break_glass: true },
    });
    assert.equal(glass.status, 200, JSON.stringify(glass.body));
    const used = (await grantEvents(glass.body.grants[0].id, ['requested', 'break_glass_used'])).find((e) => e.event.event === 'break_glass_used')!;
    assertShape(used);
    assert.deepEqual(used.event.actor, { type: 'principal', id: 'olga' });
    assert.equal(used.event.details.reason, 'production is down');
    assert.match(used.event.access_request_id!, UUID);
    await call('POST', `/v1/access/grants/${glass.body.grants[0].id}/revoke`, { as: 'olga' });
  });

  it('a retried or replayed write is the same object: one event, one key', async () => {
    const lines: any[] = [];
    const logger = createLogger('audit', { write: (line: string) => void lines.push(JSON.parse(line)) });
    logger.level = 'info'; // the tests run at warn

    const activities = createAuditActivities(loadConfig(current().stack.configPath), { logger });
    const input = {
      tenant_id: TENANT.id,
      event: 'revoked' as const,
      at: '2026-11-30T01:02:03.000Z',
      actor: { type: 'operator' as const, id: 'an operator' },
      principal: { id: 'dave' },
      target: target(freshAccount()),
      role: 'ReadOnlyAccess',
      grant_id: '6f9e0c1a-0000-4000-8000-000000000001',
      access_request_id: null,
      details: { reason: 'drill' },
      occurrence: '7',
    };
    await activities.writeAuditEvent(input);
    await activities.writeAuditEvent(input);
    const written = (await storedEvents()).filter((e) => e.event.grant_id === input.grant_id);
    assert.equal(written.length, 1);
    assertShape(written[0]);
    // And on the log, for log pipelines: the event itself, marked.
    assert.ok(lines.length >= 1);
    for (const line of lines) {
      assert.equal(line.audit, true);
      assert.equal(line.event_id, written[0].event.event_id);
      assert.equal(line.event, 'revoked');
    }
    const other = await eventually('a second occurrence', async () => {
      await activities.writeAuditEvent({ ...input, occurrence: '8' });
      const all = (await storedEvents()).filter((e) => e.event.grant_id === input.grant_id);
      return all.length === 2 ? all : undefined;
    });
    assert.notEqual(other[0].event.event_id, other[1].event.event_id, 'another occurrence is another event');
  });
});

describe('audit trail: start-up', function () {
  this.timeout(60_000);

  it('refuses to start when object_lock_days is set and the bucket has no Object Lock, and says so', async () => {
    await checkAuditStores(loadConfig(current().stack.configPath)); // the stack's bucket has it
    await testS3().send(new CreateBucketCommand({ Bucket: 'no-lock-audit' })).catch(() => undefined);
    const config = parseYaml(readFileSync(current().stack.configPath, 'utf8'));
    for (const tenant of config.tenants) tenant.audit.s3.bucket = 'no-lock-audit';
    const file = path.join(path.dirname(current().stack.configPath), 'no-lock.yaml');
    writeFileSync(file, toYaml(config));
    const run = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(process.execPath, [path.join(repoRoot, 'dist/src/api/server.js')], { env: { ...process.env, ACCESS_CONFIG: file, PORT: '0' }, timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr }),
      );
    });
    assert.equal(run.code, 1, run.out);
    assert.match(run.out, /audit\.s3\.object_lock_days is set, but bucket no-lock-audit has no Object Lock/);
  });
});

describe('audit trail: ensure_denied', function () {
  this.timeout(60_000);

  it('is written before the 403 answers, with the entitlements, the determining policies and the notices', async () => {
    const account = freshAccount();
    const reply = await ensure([{ target: target(account), role: 'PowerUserAccess', duration_seconds: 600 }], { as: 'bob', reason: 'tune db' });
    assert.equal(reply.status, 403, JSON.stringify(reply.body));
    // No waiting: the event is in the store by the time the answer is.
    const denied = (await storedEvents()).filter((e) => e.event.event === 'ensure_denied' && e.event.target === target(account));
    assert.equal(denied.length, 1);
    assertShape(denied[0]);
    const { event } = denied[0];
    assert.deepEqual(event.actor, { type: 'principal', id: 'bob' });
    assert.deepEqual(event.principal, { id: 'bob', email: 'bob@example.com' });
    assert.equal(event.role, 'PowerUserAccess');
    assert.equal(event.grant_id, null);
    assert.deepEqual(event.details.policies, ['power-user-needs-ticket']);
    assert.deepEqual(event.details.notices, reply.body.notices);
    assert.deepEqual(event.details.entitlements, [{ target: target(account), role: 'PowerUserAccess', duration_seconds: 600 }]);
    assert.equal(event.details.reason, 'tune db');
  });

  it('is one event per refused call, with an id of its own whatever X-Request-ID the caller sends', async () => {
    const [account, other] = [freshAccount(), freshAccount()];
    const requestId = 'chosen-by-the-caller';
    const refuse = async (reason: string) => {
      const res = await fetch(`${current().baseUrl}/v1/access/ensure`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await tokenFor('bob')}`, 'x-tenant-id': TENANT.id, 'content-type': 'application/json', 'x-request-id': requestId },
        body: JSON.stringify({
          entitlements: [
            { target: target(account), role: 'PowerUserAccess' },
            { target: target(other), role: 'PowerUserAccess' },
          ],
          justification: { reason },
        }),
      });
      assert.equal(res.status, 403, await res.text());
    };
    await refuse('first');
    await refuse('second');
    const denied = (await storedEvents()).filter((e) => e.event.event === 'ensure_denied' && e.event.target === target(account));
    assert.deepEqual(denied.map((e) => e.event.details.reason).sort(), ['first', 'second'], 'each call on record, once');
    for (const { event } of denied) {
      assert.equal(event.details.request_id, requestId, 'the caller\'s id is kept as data');
      assert.deepEqual(event.details.denied.map((d: { target: string }) => d.target), [target(account), target(other)], 'both refusals in one event');
      assert.equal(event.details.denied_count, 2);
    }
  });

  it('answers the 403 when the store is down, and counts the failure', async () => {
    const config = loadConfig(current().stack.configPath);
    for (const tenant of config.tenants) tenant.audit = { s3: { ...tenant.audit!.s3, endpoint: 'http://127.0.0.1:9' } };
    const api = createApi(config, current().temporal.connection as Connection);
    const server = await new Promise<Server>((resolve) => {
      const s = api.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const res = await fetch(`${url}/v1/access/ensure`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await tokenFor('mallory')}`, 'x-tenant-id': TENANT.id, 'content-type': 'application/json' },
        body: JSON.stringify({ entitlements: [{ target: target(freshAccount()), role: 'AdministratorAccess' }], justification: { reason: 'audit a forged id' } }),
      });
      assert.equal(res.status, 403);
      assert.equal(((await res.json()) as any).code, 'forbidden');
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /^access_audit_write_failures_total 1$/m);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('audit trail: what an auditor of one account sees', function () {
  this.timeout(60_000);
  let api: PolicyApi;
  const [watched, other] = [freshAccount(), freshAccount()];

  // Engineering may audit one account, and on-call the accounts the config does not describe.
  before(async () => {
    api = await startApiWithPolicies(
      `@id("engineering-audits-one-account")\npermit (principal in Group::"engineering", action == Action::"audit", resource == Account::"${watched}");\n` +
        '@id("on-call-audits-unlisted")\npermit (principal in Group::"on-call", action == Action::"audit", resource) when { resource.environment == "unknown" };\n',
    );
  });
  after(() => api?.stop());

  const auditAs = (as: 'bob' | 'olga', account: string) =>
    api.call('GET', `/v1/access/audit?target=${encodeURIComponent(target(account))}&event=ensure_denied`, { as });

  it('finds a refused call by any of its entitlements, and shows only the account asked about', async () => {
    // mallory is refused both; the other account comes first in the call.
    const refused = await ensure(
      [
        { target: target(other), role: 'PowerUserAccess' },
        { target: target(watched), role: 'PowerUserAccess' },
      ],
      { as: 'mallory', reason: 'both' },
    );
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    const seen = await auditAs('bob', watched);
    assert.equal(seen.status, 200, JSON.stringify(seen.body));
    const [event] = seen.body.events.filter((e: any) => e.principal.id === 'mallory');
    assert.ok(event, `the refusal is found by its second entitlement: ${JSON.stringify(seen.body)}`);
    assert.equal(event.target, target(watched));
    assert.deepEqual(event.details.entitlements.map((e: { target: string }) => e.target), [target(watched)], 'nothing of the other account');
    assert.deepEqual(event.details.denied.map((d: { target: string }) => d.target), [target(watched)]);
    assert.doesNotMatch(JSON.stringify(event), new RegExp(other), 'the other account is not named anywhere');
    assert.equal((await auditAs('bob', other)).status, 403, 'and the other account is not bob’s to audit');
  });

  it('sees environment "unknown" for an account the config does not describe, as ensure does', async () => {
    const unlisted = await auditAs('olga', freshAccount());
    assert.equal(unlisted.status, 200, JSON.stringify(unlisted.body));
    // The negative control: an account the config describes is not hers to audit.
    const listed = await auditAs('olga', PRODUCTION_ACCOUNT);
    assert.equal(listed.status, 403, JSON.stringify(listed.body));
  });
});
