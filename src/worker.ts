// Worker entry point (`npm run start:worker`): runs grant workflows and their AWS activities.
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './activities';
import { createNotifyActivities } from './activities/notify';
import { type AppConfig, env, loadConfig } from './config';

export async function createWorker(config: AppConfig, connection: NativeConnection): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: env.temporalNamespace,
    taskQueue: env.taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities: { ...createActivities(config), ...createNotifyActivities(config) },
  });
}

async function main(): Promise<void> {
  const config = loadConfig();
  const connection = await NativeConnection.connect(env.temporal);
  const worker = await createWorker(config, connection);
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
