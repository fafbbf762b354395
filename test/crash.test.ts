// Crashes and restarts, one of each: the worker killed mid-provisioning and mid-deprovisioning,
// the Temporal server stopped while a grant is active, the API killed mid-ensure. The worker and
// the API run as child processes on a Temporal and moto of their own (test/support/crash-world.ts).
// Many rounds of the same: test/reliability (npm run test:reliability).
import assert from 'node:assert/strict';
import { assertErrorShape, eventually } from './support/world';
import { type CrashWorld, sleep, startCrashWorld } from './support/crash-world';

describe('crashes and restarts', function () {
  this.timeout(300_000);
  let world: CrashWorld;

  before(async function () {
    this.timeout(180_000);
    world = await startCrashWorld('crash', {}, { group: true });
  });
  after(async function () {
    this.timeout(60_000);
    await world?.stop();
  });

  const grantIn = async (account: string, status: string, timeoutMs = 120_000) =>
    eventually(`the grant on ${account} to be ${status}`, async () => {
      const state = await world.state(account);
      return state?.status === status ? state : undefined;
    }, timeoutMs);

  it('a worker killed while creating and while deleting the assignment leaves exactly the right assignments', async () => {
    const account = world.freshAccount();
    const created = world.killWorkerDuring(['CreateAccountAssignment']);
    const reply = await world.ensure(account, 10);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(await created, 'CreateAccountAssignment');
    assert.equal(await world.assignments(account), 1, 'moto made the assignment; the worker never heard');
    const deleted = world.killWorkerDuring(['DeleteAccountAssignment']);
    await world.worker.start();

    const active = await grantIn(account, 'active');
    assert.equal(active.id, reply.body.grants[0].id);
    assert.equal(await world.assignments(account), 1, 'the retried creation made no second assignment');
    assert.equal(await deleted, 'DeleteAccountAssignment');
    assert.equal(await world.assignments(account), 0, 'moto deleted it; the worker never heard');
    await world.worker.start();

    const expired = await grantIn(account, 'expired');
    assert.equal(expired.expiresAt, active.expiresAt);
    assert.equal(expired.provisioningStatus, 'successful');
    assert.equal(await world.assignments(account), 0);
  });

  it('a worker killed while adding and while removing a group membership leaves exactly the right memberships', async () => {
    const groupIn = (status: string) =>
      eventually(`the group grant to be ${status}`, async () => {
        const state = await world.groupState();
        return state?.status === status ? state : undefined;
      }, 120_000);
    const created = world.killWorkerDuring(['CreateGroupMembership']);
    const reply = await world.ensureGroup(10);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(await created, 'CreateGroupMembership');
    assert.equal(await world.memberships(), 1, 'moto made the membership; the worker never heard');
    const deleted = world.killWorkerDuring(['DeleteGroupMembership']);
    await world.worker.start();

    const active = await groupIn('active');
    assert.equal(active.assignmentPreexisted, false, 'the retry took the membership for the grant\'s own, by the look recorded before it');
    assert.equal(await world.memberships(), 1, 'the retried creation made no second membership');
    assert.equal(await deleted, 'DeleteGroupMembership');
    assert.equal(await world.memberships(), 0, 'moto deleted it; the worker never heard');
    await world.worker.start();

    const expired = await groupIn('expired');
    assert.equal(expired.expiresAt, active.expiresAt);
    assert.equal(await world.memberships(), 0);
  });

  it('expires a grant whose expiry passed while the Temporal server was down', async () => {
    const account = world.freshAccount();
    const reply = await world.ensure(account, 5);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const active = await grantIn(account, 'active');
    assert.equal(await world.assignments(account), 1);

    await world.stack.stopTemporal('SIGTERM');
    // Down until after the grant's expiry: the timer must fire late, not be lost.
    await sleep(Math.max(0, Date.parse(active.expiresAt!) - Date.now()) + 2000);
    assert.equal(await world.assignments(account), 1, 'nothing removed it while Temporal was down');
    await world.stack.startTemporal();

    const expired = await grantIn(account, 'expired');
    assert.equal(expired.id, active.id);
    assert.equal(await world.assignments(account), 0);
  });

  it('with no worker polling, an ensure that must ask the grant answers 503 with Retry-After, changes nothing, and is answered once the worker is back', async () => {
    const account = world.freshAccount();
    assert.equal((await world.ensure(account, 600)).status, 200);
    const active = await grantIn(account, 'active');
    await world.worker.kill();
    // Past the server's window for pollers (20 s), it refuses a query at once ("no poller seen").
    await sleep(25_000);
    // Shorter than what is held: the API asks the grant for its state before anything else.
    const refused = await world.ensure(account, 300);
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assertErrorShape(refused, 'unavailable');
    assert.ok(Number(refused.headers.get('retry-after')) > 0, 'Retry-After');
    await world.worker.start();
    const answered = await world.ensure(account, 300);
    assert.equal(answered.status, 200, JSON.stringify(answered.body));
    assert.equal(answered.body.grants[0].change, 'none');
    assert.equal(answered.body.grants[0].expires_at, active.expiresAt);
    assert.equal(await world.assignments(account), 1);
  });

  it('a client retrying an ensure cut off by an API crash gets the one grant', async () => {
    const accounts = [world.freshAccount(), world.freshAccount(), world.freshAccount()];
    // Without a worker the calls wait inside the API for the workflows to take them.
    await world.worker.kill();
    const cutOff = accounts.map((account) => world.ensure(account, 600).then(() => 'answered', () => 'cut off'));
    // Kill the API once the workflows have started and hold the calls' updates.
    await eventually('the grant workflows to be started', async () => {
      await Promise.all(accounts.map((a) => world.temporal.workflow.getHandle(world.workflowId(a)).describe()));
      return true;
    });
    await world.api.kill();
    assert.deepEqual(await Promise.all(cutOff), ['cut off', 'cut off', 'cut off']);
    await Promise.all([world.api.start(), world.worker.start()]);

    for (const account of accounts) {
      const retry = await world.ensure(account, 600);
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
      const grant = retry.body.grants[0];
      assert.ok(['activated', 'none'].includes(grant.change), grant.change);
      await grantIn(account, 'active');
      const listed = await world.get(`?target=AWS::Account::${account}`);
      assert.deepEqual(listed.body.grants.map((g: { id: string }) => g.id), [grant.id], 'one grant for the key');
      assert.equal(await world.assignments(account), 1);
    }
  });
});
