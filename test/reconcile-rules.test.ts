// What reconciliation counts as missing, leaked or foreign: the rules alone, without a stack.
import assert from 'node:assert/strict';
import { type Assignment, findDriftIn, type GrantRecord } from '../src/activities/reconcile';

const PS = 'arn:aws:sso:::instance/ssoins-1/ps-1';
const assignment = (accountId: string, userId: string): Assignment => ({ accountId, permissionSetArn: PS, principalType: 'USER', principalId: userId });
const grant = (accountId: string, userId: string, over: Partial<GrantRecord> = {}): GrantRecord => ({
  workflowId: `grant/t/${userId}/${accountId}/ReadOnlyAccess`,
  runId: `run-${accountId}-${userId}`,
  open: true,
  closedAt: null,
  grantId: `g-${accountId}-${userId}`,
  status: 'active',
  closing: false,
  accountId,
  role: 'ReadOnlyAccess',
  principalId: userId,
  assignmentPreexisted: false,
  ids: { userId, permissionSetArn: PS },
  activatedAt: '2026-01-01T00:00:00.000Z',
  ...over,
});
const closed = (accountId: string, userId: string, closedAt: string, over: Partial<GrantRecord> = {}) =>
  grant(accountId, userId, { open: false, status: 'expired', closedAt, ...over });

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
      ],
      't',
    );
    assert.deepEqual(drift.missing.map((m) => m.accountId), ['111111111111']);
  });

  it('a grant that became active after the listing began is not missing: the listing may have passed its assignment by', () => {
    const listedFrom = '2026-01-01T00:10:00.000Z';
    const drift = findDriftIn(
      [],
      [grant('111111111111', 'u1', { activatedAt: '2026-01-01T00:09:59.999Z' }), grant('111111111112', 'u2', { activatedAt: '2026-01-01T00:10:00.001Z' })],
      't',
      listedFrom,
    );
    assert.deepEqual(drift.missing.map((m) => m.accountId), ['111111111111']);
  });

  it('an assignment a closed grant created is leaked, unless an open grant holds it', () => {
    const drift = findDriftIn(
      [assignment('111111111111', 'u1'), assignment('111111111112', 'u2')],
      [closed('111111111111', 'u1', '2026-01-01T00:00:00Z'), closed('111111111112', 'u2', '2026-01-01T00:00:00Z'), grant('111111111112', 'u2')],
      't',
    );
    assert.deepEqual(drift.leaked.map((l) => [l.accountId, l.runId]), [['111111111111', 'run-111111111111-u1']]);
    assert.deepEqual(drift.foreign, []);
  });

  it('the newest closed grant decides: if it found the assignment already there, it is not ours', () => {
    const drift = findDriftIn(
      [assignment('111111111111', 'u1')],
      [
        closed('111111111111', 'u1', '2026-01-01T00:00:00Z', { workflowId: 'a' }),
        closed('111111111111', 'u1', '2026-02-01T00:00:00Z', { workflowId: 'b', assignmentPreexisted: true }),
      ],
      't',
    );
    assert.deepEqual(drift.leaked, []);
    assert.equal(drift.foreignTotal, 1);
  });

  it('an assignment no grant knows is foreign, counted in full and listed up to a cap', () => {
    const many = Array.from({ length: 150 }, (_, i) => assignment('111111111111', `someone-${i}`));
    const drift = findDriftIn(many, [], 't');
    assert.equal(drift.foreignTotal, 150);
    assert.equal(drift.foreign.length, 100);
    assert.deepEqual(drift.leaked, []);
  });
});
