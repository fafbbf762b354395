// The floors the benchmark divides by, as their own processes (like the real worker and API):
//   node dist/bench/floor.js worker   a worker for floorWorkflow on the task queue FLOOR_TASK_QUEUE
//   node dist/bench/floor.js server   an Express server whose routes each do only what a floor names
// Environment: TEMPORAL_ADDRESS, PORT, and for the server BENCH_AWS (JSON: endpoint and, per
// region, the instance, user and permission set that the activation floor assigns).
import { randomUUID } from 'node:crypto';
import { CreateAccountAssignmentCommand, DescribeAccountAssignmentCreationStatusCommand, SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import express from 'express';
import { floorStateQuery, touchUpdate, type floorWorkflow } from './floor-workflows';

export const FLOOR_TASK_QUEUE = 'bench-floor';

export interface FloorAws {
  endpoint: string;
  regions: { region: string; instanceArn: string; userId: string; permissionSetArn: string }[];
}

const address = process.env.TEMPORAL_ADDRESS ?? 'localhost:7233';

async function runWorker(): Promise<void> {
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({ connection, taskQueue: FLOOR_TASK_QUEUE, workflowsPath: require.resolve('./floor-workflows') });
  process.on('SIGTERM', () => worker.shutdown());
  console.log(`floor worker polling ${FLOOR_TASK_QUEUE}`);
  await worker.run();
  await connection.close();
}

async function runServer(): Promise<void> {
  const aws = JSON.parse(process.env.BENCH_AWS ?? '{"endpoint":"","regions":[]}') as FloorAws;
  const clients = aws.regions.map((r) => ({
    ...r,
    sso: new SSOAdminClient({ region: r.region, endpoint: aws.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  }));
  const client = new Client({ connection: await Connection.connect({ address }) });
  const app = express();
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // No-change floor: one query to a running workflow, its JSON back.
  app.post('/floor/query/:id', async (req, res) => {
    res.json(await client.workflow.getHandle(req.params.id).query(floorStateQuery));
  });
  // Extension floor: one empty update to a running workflow.
  app.post('/floor/update/:id', async (req, res) => {
    res.json(await client.workflow.getHandle(req.params.id).executeUpdate(touchUpdate));
  });
  // Activation floor: update-with-start of an empty workflow, then one CreateAccountAssignment and
  // one status call.
  app.post('/floor/activate/:region/:account', async (req, res) => {
    const target = clients[Number(req.params.region)];
    await client.workflow.executeUpdateWithStart(touchUpdate, {
      startWorkflowOperation: new WithStartWorkflowOperation<typeof floorWorkflow>('floorWorkflow', {
        workflowId: `floor-activate/${req.params.account}/${randomUUID()}`,
        taskQueue: FLOOR_TASK_QUEUE,
        args: [{ state: null, hold: false }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
    const started = await target.sso.send(
      new CreateAccountAssignmentCommand({
        InstanceArn: target.instanceArn,
        TargetId: req.params.account,
        TargetType: 'AWS_ACCOUNT',
        PermissionSetArn: target.permissionSetArn,
        PrincipalType: 'USER',
        PrincipalId: target.userId,
      }),
    );
    const status = await target.sso.send(
      new DescribeAccountAssignmentCreationStatusCommand({
        InstanceArn: target.instanceArn,
        AccountAssignmentCreationRequestId: started.AccountAssignmentCreationStatus?.RequestId,
      }),
    );
    res.json(status.AccountAssignmentCreationStatus);
  });
  const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => console.log(`floor server on ${process.env.PORT}`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

if (require.main === module) {
  (process.argv[2] === 'worker' ? runWorker() : runServer()).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
