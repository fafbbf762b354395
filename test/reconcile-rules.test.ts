// What reconciliation counts as missing, leaked or foreign: the rules alone, without a stack.
import assert from 'node:assert/strict';
import { type Assignment, findDriftIn, type GrantRecord } from '../src/activities/reconcile';

const PS = 'arn:aws:sso:::instance/ssoins-1/ps-1';
const assignment = (accountId: string, userId: string): Assignment => ({ accountId, permissionSetArn: PS, principalType: 'USER', principalId: userId });
const grant = (accountId: string, userId: string, over: Partial<GrantRecord> = {}): GrantRecord => ({
  tenantId: 't',
  workflowId: `grant/t/${userId}/${accountId}/ReadOnlyAccess`,
  runId: `run-${accountId}-${userId}`,
  open: true,
  closedAt: null,
  removalConfirmed: false,
  grantId: `g-${accountId}-${userId}`,
  status: 'active',
  closing: false,
  accountId,
  role: 'ReadOnlyAccess',
  principalId: userId,
  assignmentPreexisted: false,
  ids: { userId, permissionSetArn: PS },
  activatedAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-01T01:00:00.000Z',
  ...over,
});
/** A run that ended its own way: it removed what it created. */
const closed = (accountId: string, userId: string, closedAt: string, over: Partial<GrantRecord> = {}) =>
  grant(accountId, userId, { open: false, status: 'expired', closing: true, removalConfirmed: true, closedAt, ...over });
/** A run an operator terminated while it was active: its assignment stayed. */
const terminated = (accountId: string, userId: string, closedAt: string, over: Partial<GrantRecord> = {}) =>
  grant(accountId, userId, { open: false, closedAt, ...over });

describe('reconciliation rules', () => {
  it('an active grant of its own without its assignment is missing; others are not', () => {
    const drift = findDriftIn(
      [],
      [
        grant('111111111111', 'u1'),
        grant('111111111112', 'u2', { assignmentPreexisted: true }),
        grant('111111111113', 'u3', { status: 'pending', ids: null, assignmentPreexisted: null }),
        grant('111111111114', 'u4', { closing: true }),
        closed('111111111115', 'u5', '2026-01-01T00:00:00Z'),
        grant('111111111116', 'u6', { tenantId: 'other' }),
      ],
      { tenantId: 't' },
    );
    assert.deepEqual(drift.missing.map((m) => m.accountId), ['111111111111']);
  });

  it('a grant that became active after the listing began is not missing: the listing may have passed its assignment by', () => {
    const listedFrom = '2026-01-01T00:10:00.000Z';
    const drift = findDriftIn(
      [],
      [grant('111111111111', 'u1', { activatedAt: '2026-01-01T00:09:59.999Z' }), grant('111111111112', 'u2', { activatedAt: '2026-01-01T00:10:00.001Z' })],
      { tenantId: 't', listedFrom },
    );
    assert.deepEqual(drift.missing.map((m) => m.accountId), ['111111111111']);
  });

  it('a grant whose expiry passed before the listing began is not missing: its access is being removed', () => {
    const listedFrom = '2026-01-01T01:00:00.000Z';
    const drift = findDriftIn(
      [],
      [grant('111111111111', 'u1', { expiresAt: '2026-01-01T01:00:00.001Z' }), grant('111111111112', 'u2', { expiresAt: '2026-01-01T00:59:59.999Z' })],
      { tenantId: 't', listedFrom },
    );
    assert.deepEqual(drift.missing.map((m) => m.accountId), ['111111111111']);
  });

  it('an assignment a run created and never confirmed removing is leaked, unless an open grant holds it', () => {
    const drift = findDriftIn(
      [assignment('111111111111', 'u1'), assignment('111111111112', 'u2')],
      [terminated('111111111111', 'u1', '2026-01-01T00:00:00Z'), terminated('111111111112', 'u2', '2026-01-01T00:00:00Z'), grant('111111111112', 'u2', { workflowId: 'other-key' })],
      { tenantId: 't' },
    );
    assert.deepEqual(drift.leaked.map((l) => [l.accountId, l.runId]), [['111111111111', 'run-111111111111-u1']]);
    assert.deepEqual(drift.foreign, []);
  });

  it('an assignment made after its grant confirmed removing its own is foreign, never leaked', () => {
    const drift = findDriftIn(
      [assignment('111111111111', 'u1'), assignment('111111111112', 'u2')],
      [closed('111111111111', 'u1', '2026-01-01T00:00:00Z'), closed('111111111112', 'u2', '2026-01-01T00:00:00Z', { status: 'revoked' })],
      { tenantId: 't' },
    );
    assert.deepEqual(drift.leaked, []);
    assert.equal(drift.foreignTotal, 2);
  });

  it('the newest closed run decides: a removal confirmed after a terminated run leaves nothing of ours', () => {
    const confirmedLater = findDriftIn(
      [assignment('111111111111', 'u1')],
      [terminated('111111111111', 'u1', '2026-01-01T00:00:00Z', { workflowId: 'a' }), closed('111111111111', 'u1', '2026-02-01T00:00:00Z', { workflowId: 'b' })],
      { tenantId: 't' },
    );
    assert.deepEqual(confirmedLater.leaked, []);
    assert.equal(confirmedLater.foreignTotal, 1);
    const terminatedLater = findDriftIn(
      [assignment('111111111111', 'u1')],
      [closed('111111111111', 'u1', '2026-01-01T00:00:00Z', { workflowId: 'a' }), terminated('111111111111', 'u1', '2026-02-01T00:00:00Z', { workflowId: 'b' })],
      { tenantId: 't' },
    );
    assert.deepEqual(terminatedLater.leaked.map((l) => l.workflowId), ['b']);
  });

  it('an assignment any grant found already there is foreign', () => {
    const drift = findDriftIn(
      [assignment('111111111111', 'u1')],
      [
        closed('111111111111', 'u1', '2026-01-01T00:00:00Z', { workflowId: 'a', assignmentPreexisted: true }),
        terminated('111111111111', 'u1', '2026-02-01T00:00:00Z', { workflowId: 'b' }),
      ],
      { tenantId: 't' },
    );
    assert.deepEqual(drift.leaked, []);
    assert.equal(drift.foreignTotal, 1);
  });

  it('tenants on one instance: another tenant’s open grant holds it; another tenant’s run is removed by its own round', () => {
    const drift = findDriftIn(
      [assignment('111111111111', 'u1'), assignment('111111111112', 'u2')],
      [
        terminated('111111111111', 'u1', '2026-01-01T00:00:00Z'),
        grant('111111111111', 'u1', { tenantId: 'other', workflowId: 'grant/other/u1', assignmentPreexisted: true }),
        terminated('111111111112', 'u2', '2026-01-01T00:00:00Z', { tenantId: 'other', workflowId: 'grant/other/u2' }),
      ],
      { tenantId: 't' },
    );
    assert.deepEqual(drift.leaked, []);
    assert.deepEqual(drift.foreign, [], 'neither is foreign: one is held, the other is the other tenant’s to remove');
    const other = findDriftIn([assignment('111111111112', 'u2')], [terminated('111111111112', 'u2', '2026-01-01T00:00:00Z', { tenantId: 'other' })], { tenantId: 'other' });
    assert.deepEqual(other.leaked.map((l) => [l.accountId, l.tenantId]), [['111111111112', 'other']]);
  });

  it('nothing is removed where a grant could not be read or has not looked yet', () => {
    const drift = findDriftIn([assignment('111111111111', 'u1')], [terminated('111111111111', 'u1', '2026-01-01T00:00:00Z')], {
      tenantId: 't',
      undecided: new Set([`111111111111|${PS}`]),
    });
    assert.deepEqual(drift.leaked, []);
  });

  it('an assignment no grant knows is foreign, counted in full and listed up to a cap', () => {
    const many = Array.from({ length: 150 }, (_, i) => assignment('111111111111', `someone-${i}`));
    const drift = findDriftIn(many, [], { tenantId: 't' });
    assert.equal(drift.foreignTotal, 150);
    assert.equal(drift.foreign.length, 100);
    assert.deepEqual(drift.leaked, []);
  });
});
