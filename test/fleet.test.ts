// Each worker's share of the provider quota, from the workers Temporal lists as polling.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { NativeConnection, Worker } from '@temporalio/worker';
import { fleetShare, FLEET_REFRESH_MS, presenceQueueOf } from '../src/activities/fleet';
import { env } from '../src/config';
import { current, eventually } from './support/world';

/** A presence poller in a process of its own (one process registers one worker per task queue). */
function otherWorker(address: string, taskQueue: string, identity: string) {
  const script = `
    const { NativeConnection, Worker } = require('@temporalio/worker');
    (async () => {
      const connection = await NativeConnection.connect({ address: ${JSON.stringify(address)} });
      const worker = await Worker.create({ connection, namespace: ${JSON.stringify(env.temporalNamespace)}, taskQueue: ${JSON.stringify(taskQueue)},
        identity: ${JSON.stringify(identity)}, activities: { present: async () => undefined } });
      await worker.run();
    })();`;
  return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
}

describe('sharing the provider quota among workers', function () {
  this.timeout(120_000);

  it('a worker calls nothing until every other worker can count it, then takes its equal share', async () => {
    const { stack, temporal } = current();
    const taskQueue = `fleet-${process.pid}-${Date.now()}`;
    const connection = await NativeConnection.connect({ address: stack.temporalAddress });
    const presence = await Worker.create({
      connection,
      namespace: env.temporalNamespace,
      taskQueue: presenceQueueOf(taskQueue),
      identity: 'worker-a',
      activities: { present: async () => undefined },
    });
    const running = presence.run();
    const options = { namespace: env.temporalNamespace, taskQueue };
    const a = fleetShare(temporal, { ...options, identity: 'worker-a' });
    const ghost = fleetShare(temporal, { ...options, identity: 'worker-never-polls' });
    // worker-b's share as its own process sees it (it only polls; its share is read here).
    const bShare = fleetShare(temporal, { ...options, identity: 'worker-b' });
    const b = otherWorker(stack.temporalAddress, presenceQueueOf(taskQueue), 'worker-b');
    try {
      const joined = performance.now();
      assert.equal(a.of(20), 0, 'not counted by the others yet');
      await eventually('worker-a to get a share', async () => (a.of(20) > 0 ? true : undefined), 60_000);
      assert.ok(performance.now() - joined >= FLEET_REFRESH_MS, 'waited for the others to refresh');
      // worker-b polls too: half each; an odd unit goes to the first identity, so the shares add up.
      await eventually('worker-a to count worker-b', async () => (a.of(20) === 10 ? true : undefined), 60_000);
      await eventually('worker-b to get a share', async () => (bShare.of(20) > 0 ? true : undefined), 60_000);
      assert.deepEqual([a.of(20), bShare.of(20)], [10, 10]);
      assert.deepEqual([a.of(3), bShare.of(3)], [2, 1]);
      assert.deepEqual([a.of(1), bShare.of(1)], [1, 1], 'never less than 1');
      assert.equal(ghost.of(20), 0, 'a worker Temporal does not list makes no call');
    } finally {
      a.stop();
      ghost.stop();
      bShare.stop();
      b.kill();
      presence.shutdown();
      await running;
      await connection.close();
    }
  });
});
