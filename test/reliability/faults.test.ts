// The slower provider faults: more throttling than the SDK's attempts, and an answer that never
// comes (the SDK's request timeout, then its retry). Runs under `npm run test:reliability`.
import assert from 'node:assert/strict';
import type { FaultRule } from '../support/fault-proxy';
import { assignmentsOf, current, ensure, freshAccount, grantReaching, target } from '../support/world';

describe('slow faults at the provider', function () {
  this.timeout(180_000);
  const proxy = () => current().faults;
  beforeEach(() => proxy().reset());
  afterEach(() => proxy().reset());

  const cases: [string, string, FaultRule, number][] = [
    ['throttling beyond the SDK attempts (then retried by Temporal)', 'CreateAccountAssignment', { error: 'ThrottlingException', times: 6 }, 7],
    ['an answer slower than the SDK request timeout', 'CreateAccountAssignment', { delayMs: 15_000, times: 1 }, 2],
    // The SDK gives up after 5 attempts; Temporal's retry then finds the assignment made and is done.
    ['HTTP 500 on status polls beyond the SDK attempts', 'DescribeAccountAssignmentCreationStatus', { status: 500, times: 6 }, 5],
  ];
  for (const [what, op, rule, calls] of cases) {
    it(`${what}: the grant ends active with exactly one assignment`, async () => {
      const account = freshAccount();
      if (op === 'DescribeAccountAssignmentCreationStatus') await proxy().on('CreateAccountAssignment', { inProgressPolls: 0 });
      await proxy().on(op, rule);
      const reply = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }], { as: 'fay' });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const active = await grantReaching(reply.body.grants[0].id, 'active', 'fay', 150_000);
      assert.equal(active.provisioning_status, 'successful');
      assert.equal(await assignmentsOf('fay', account, 'ReadOnlyAccess'), 1);
      assert.equal(await proxy().count(op), calls, `${op} calls`);
    });
  }
});
