// heartbeatingWithRecord on the real server: what one attempt records, the next attempt reads back;
// an attempt the server has given up on is told so before it acts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { heartbeatingWithRecord } from '../src/activities/poll';
import { current, eventually } from './support/world';

describe('heartbeats with a record', function () {
  this.timeout(120_000);

  it('a retry reads back what the attempt before recorded; the abandoned attempt learns it is over', async () => {
    const connection = await NativeConnection.connect({ address: current().stack.temporalAddress });
    const client = new Client({ connection });
    const taskQueue = `recorded-attempt-${randomUUID()}`;
    let abandonedAttemptTold: Error | undefined;
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowsPath: require.resolve('./fixtures/recorded-attempt-workflows'),
      activities: {
        // Beats every 4 s against a heartbeat timeout of 2 s: the server gives up on each attempt
        // between its first beat (the record) and its second.
        recordedAttempt: () =>
          heartbeatingWithRecord(
            () => client.activity,
            async ({ recorded, record, stillCurrent }) => {
              if (Context.current().info.attempt > 1) return recorded;
              await record({ looked: 'by the first attempt' });
              await eventually('the first attempt to be told it is over', async () => {
                try {
                  stillCurrent();
                  return undefined;
                } catch (err) {
                  abandonedAttemptTold = err as Error;
                  return true;
                }
              }, 30_000);
              return 'the first attempt went on';
            },
            4_000,
          ),
      },
    });
    try {
      const result = await worker.runUntil(
        client.workflow.execute('recordedAttemptWorkflow', { taskQueue, workflowId: taskQueue }),
      );
      assert.deepEqual(result, { looked: 'by the first attempt' });
      await eventually('the first attempt to end', async () => (abandonedAttemptTold ? true : undefined), 30_000);
      assert.ok(abandonedAttemptTold, 'told');
    } finally {
      await connection.close();
    }
  });
});
