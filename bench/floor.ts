// The floors the benchmark divides by, as their own processes (like the real worker and API):
//   node dist/bench/floor.js worker   a worker for floorWorkflow on the task queue FLOOR_TASK_QUEUE
//   node dist/bench/floor.js server   an Express server whose routes each do only what a floor names
// Environment: TEMPORAL_ADDRESS, PORT, BENCH_AWS (JSON: endpoint and, per region, the instance,
// user and permission set that the activation floor assigns and the end-access floor unassigns),
// and for the server ACCESS_CONFIG (the stack's config: its first tenant's audit store is where
// the extension floor writes).
import { randomUUID } from 'node:crypto';
import { CreateAccountAssignmentCommand, DeleteAccountAssignmentCommand, DescribeAccountAssignmentCreationStatusCommand, SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import express from 'express';
import { createAuditWriter } from '../src/activities/audit';
import { env, loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { floorStateQuery, touchUpdate, type FloorActivities, type floorWorkflow } from './floor-workflows';

export const FLOOR_TASK_QUEUE = 'bench-floor';

export interface FloorAws {
  endpoint: string;
  regions: { region: string; instanceArn: string; userId: string; permissionSetArn: string }[];
}

const address = process.env.TEMPORAL_ADDRESS ?? 'localhost:7233';

/** BENCH_AWS's instances, each with a client of its region. */
function floorInstances() {
  const aws = JSON.parse(process.env.BENCH_AWS ?? '{"endpoint":"","regions":[]}') as FloorAws;
  return aws.regions.map((r) => ({
    ...r,
    sso: new SSOAdminClient({ region: r.region, endpoint: aws.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  }));
}

async function runWorker(): Promise<void> {
  const instances = floorInstances();
  const activities: FloorActivities = {
    async endAccess(region, account) {
      const target = instances[region];
      await target.sso.send(
        new DeleteAccountAssignmentCommand({
          InstanceArn: target.instanceArn,
          TargetId: account,
          TargetType: 'AWS_ACCOUNT',
          PermissionSetArn: target.permissionSetArn,
          PrincipalType: 'USER',
          PrincipalId: target.userId,
        }),
      );
    },
  };
  const connection = await NativeConnection.connect({ address });
  // Cached workflows and the sticky queue's timeout as the real worker has them (src/worker.ts).
  const worker = await Worker.create({
    connection,
    taskQueue: FLOOR_TASK_QUEUE,
    workflowsPath: require.resolve('./floor-workflows'),
    activities,
    maxCachedWorkflows: env.workerMaxCachedWorkflows,
    stickyQueueScheduleToStartTimeout: env.workerStickyTimeoutMs,
  });
  process.on('SIGTERM', () => worker.shutdown());
  console.log(`floor worker polling ${FLOOR_TASK_QUEUE}`);
  await worker.run();
  await connection.close();
}

async function runServer(): Promise<void> {
  const clients = floorInstances();
  const config = loadConfig();
  const audit = createAuditWriter(config, createLogger('floor-audit'));
  const auditTenant = config.tenants[0].id;
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
  // Extension floor with its audit write: the empty update, then one event shaped as an
  // extension's (src/workflows/grant/entity.ts), written as the worker writes it (the same writer,
  // store and bucket).
  app.post('/floor/update-audit/:id', async (req, res) => {
    const answer = await client.workflow.getHandle(req.params.id).executeUpdate(touchUpdate);
    const at = new Date().toISOString();
    await audit.write({
      occurrence: randomUUID(),
      at,
      tenant_id: auditTenant,
      event: 'extended',
      actor: { type: 'principal', id: 'bench-floor' },
      principal: { id: 'bench-floor', email: 'bench-floor@example.com' },
      target: `AWS::Account::${req.params.id}`,
      role: 'ReadOnlyAccess',
      grant_id: randomUUID(),
      access_request_id: null,
      details: { expires_at: at, duration_seconds: 3600, reason: 'bench' },
    });
    res.json(answer);
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
