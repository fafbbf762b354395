// Worker entry point (`npm run start:worker`): runs grant and reconciliation workflows and their
// activities, and keeps each tenant's reconciliation Schedule up to date.
import { Client } from '@temporalio/client';
import { DefaultLogger, type LogEntry, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { createActivities } from './activities';
import { checkAuditStores, createAuditActivities } from './activities/audit';
import { fleetShare, presenceQueueOf, type QuotaShare } from './activities/fleet';
import { createNotifyActivities } from './activities/notify';
import { type AppConfig, env, loadConfig } from './config';
import { createLogger, type Logger } from './log';
import { createWorkerMetrics, serveMetrics, type WorkerMetrics } from './metrics';
import { freePort } from './net';
import { ensureReconcileSchedules } from './schedules';

/** `quota`: this worker's share of the provider limits (fleet.ts); without it, all of them. */
export async function createWorker(config: AppConfig, connection: NativeConnection, metrics?: WorkerMetrics, quota?: QuotaShare): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: env.temporalNamespace,
    taskQueue: env.taskQueue,
    ...(env.workflowBundle ? { workflowBundle: { codePath: env.workflowBundle } } : { workflowsPath: require.resolve('./workflows') }),
    maxCachedWorkflows: env.workerMaxCachedWorkflows,
    stickyQueueScheduleToStartTimeout: env.workerStickyTimeoutMs,
    maxConcurrentActivityTaskExecutions: env.workerMaxConcurrentActivities,
    activities: workerActivities(config, { client: new Client({ connection, namespace: env.temporalNamespace }), metrics, quota }),
  });
}

/** Every activity the workflows call: a worker that lacks one fails the workflow tasks that call it. */
export function workerActivities(config: AppConfig, { client, metrics, quota }: { client: Client; metrics?: WorkerMetrics; quota?: QuotaShare }) {
  const audit = createAuditActivities(config, { metrics });
  return {
    ...createActivities(config, { client, metrics, quota, writeAuditEvents: audit.writeAuditEvents }),
    ...createNotifyActivities(config),
    ...audit,
  };
}

/** The SDK's log entries (its own, and workflow and activity `log` calls) as pino lines. */
function toPino(log: Logger) {
  return ({ level, message, meta }: LogEntry): void => {
    const { workflowId, runId, ...rest } = (meta ?? {}) as Record<string, unknown>;
    log[level.toLowerCase() as 'info']({ ...rest, workflow_id: workflowId, run_id: runId }, message);
  };
}

async function namespaceAnswers(connection: NativeConnection): Promise<boolean> {
  await connection.withDeadline(Date.now() + 5000, () => connection.workflowService.describeNamespace({ namespace: env.temporalNamespace }));
  return true;
}

/**
 * A fresh server answers before its namespace is registered: the worker waits for it (a supervisor
 * restarting a worker that gave up would only add noise), and /readyz says not ready meanwhile.
 */
async function untilNamespaceAnswers(connection: NativeConnection, log: Logger): Promise<void> {
  // Nothing runs yet, so a stop meanwhile simply ends the process (the SDK's own handler would
  // only mark its runtime as shutting down, and the wait would go on).
  const stop = () => {
    log.info('worker stopped before it polled');
    process.exit(0);
  };
  process.once('SIGTERM', stop).once('SIGINT', stop);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await namespaceAnswers(connection);
        return;
      } catch (err) {
        if (attempt === 0) log.warn({ namespace: env.temporalNamespace, err: (err as Error).message }, 'waiting for the namespace to answer');
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } finally {
    process.off('SIGTERM', stop).off('SIGINT', stop);
  }
}

async function main(log: Logger): Promise<void> {
  const config = loadConfig();
  await checkAuditStores(config);
  // The SDK's Prometheus exporter listens on loopback only; our /metrics appends its text, so one
  // scrape target carries both.
  const sdkMetricsPort = await freePort();
  Runtime.install({
    logger: new DefaultLogger((process.env.TEMPORAL_LOG_LEVEL as 'INFO') ?? 'INFO', toPino(log)),
    telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${sdkMetricsPort}` } } },
    // The default signals (SIGINT, SIGTERM, ...) shut the worker down: running activities get the
    // shutdown grace time, and workflow tasks in hand are completed or handed back to the server.
  });
  const metrics = createWorkerMetrics();
  let connection: NativeConnection | undefined;
  let polling = false;
  // Ready while it polls and its namespace answers (issue 35 §9).
  const ready = async () => polling && (await namespaceAnswers(connection!));
  const metricsServer =
    env.workerMetricsPort > 0
      ? await serveMetrics(
          metrics.registry,
          { port: env.workerMetricsPort, host: env.workerMetricsHost },
          async () => {
            const res = await fetch(`http://127.0.0.1:${sdkMetricsPort}/metrics`, { signal: AbortSignal.timeout(2000) });
            return res.text();
          },
          ready,
        )
      : undefined;
  connection = await NativeConnection.connect(env.temporal);
  await untilNamespaceAnswers(connection, log);
  const client = new Client({ connection, namespace: env.temporalNamespace });
  // This worker's name among the deployment's workers: the SDK's default identity, made unique
  // (containers may share a pid and a host name; two workers taken for one would overdraw the quota).
  const identity = `${process.pid}@${os.hostname()}/${randomUUID().slice(0, 8)}`;
  const quota = fleetShare(client, {
    namespace: env.temporalNamespace,
    taskQueue: env.taskQueue,
    identity,
    refreshMs: env.workerFleetRefreshMs,
    onError: (err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot count the workers (DescribeTaskQueue); AWS calls wait'),
  });
  const worker = await createWorker(config, connection, metrics, quota);
  // Never gets a task: its pollers are how the other workers count this one (fleet.ts).
  const presence = await Worker.create({
    connection,
    namespace: env.temporalNamespace,
    taskQueue: presenceQueueOf(env.taskQueue),
    identity,
    activities: { present: async () => undefined },
  });
  await ensureReconcileSchedules(client, config);
  polling = true;
  log.info({ task_queue: env.taskQueue, temporal: env.temporal.address, metrics_host: env.workerMetricsHost, metrics_port: env.workerMetricsPort }, 'worker polling');
  // Either one stopping (a signal stops both) stops the other.
  const stop = (other: Worker) => () => {
    if (other.getState() === 'RUNNING') other.shutdown();
  };
  await Promise.all([worker.run().finally(stop(presence)), presence.run().finally(stop(worker))]);
  polling = false;
  quota.stop();
  await connection.close();
  metricsServer?.close();
  log.info('worker stopped');
}

if (require.main === module) {
  const log = createLogger('worker');
  main(log).then(
    () => process.exit(0),
    (err) => {
      log.fatal(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
