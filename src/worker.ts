// Worker entry point (`npm run start:worker`): runs grant and reconciliation workflows and their
// activities, and keeps each tenant's reconciliation Schedule up to date.
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './activities';
import { type AppConfig, env, loadConfig } from './config';
import { ensureReconcileSchedules } from './schedules';

export async function createWorker(config: AppConfig, connection: NativeConnection): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: env.temporalNamespace,
    taskQueue: env.taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities: createActivities(config, new Client({ connection, namespace: env.temporalNamespace })),
  });
}

async function main(): Promise<void> {
  const config = loadConfig();
  const connection = await NativeConnection.connect(env.temporal);
  const worker = await createWorker(config, connection);
  await ensureReconcileSchedules(new Client({ connection, namespace: env.temporalNamespace }), config);
  console.log(`worker polling ${env.taskQueue} on ${env.temporal.address}`);
  await worker.run();
  await connection.close();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
