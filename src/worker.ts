// Worker entry point (`npm run start:worker`): runs grant and reconciliation workflows and their
// activities, and keeps each tenant's reconciliation Schedule up to date.
import { Client } from '@temporalio/client';
import { DefaultLogger, type LogEntry, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from './activities';
import { checkAuditStores, createAuditActivities } from './activities/audit';
import { createNotifyActivities } from './activities/notify';
import { type AppConfig, env, loadConfig } from './config';
import { createLogger, type Logger } from './log';
import { createWorkerMetrics, serveMetrics, type WorkerMetrics } from './metrics';
import { freePort } from './net';
import { ensureReconcileSchedules } from './schedules';

export async function createWorker(config: AppConfig, connection: NativeConnection, metrics?: WorkerMetrics): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: env.temporalNamespace,
    taskQueue: env.taskQueue,
    workflowsPath: require.resolve('./workflows'),
    maxCachedWorkflows: env.workerMaxCachedWorkflows,
    maxConcurrentActivityTaskExecutions: env.workerMaxConcurrentActivities,
    activities: {
      ...createActivities(config, { client: new Client({ connection, namespace: env.temporalNamespace }), metrics }),
      ...createNotifyActivities(config),
      ...createAuditActivities(config, { metrics }),
    },
  });
}

/** The SDK's log entries (its own, and workflow and activity `log` calls) as pino lines. */
function toPino(log: Logger) {
  return ({ level, message, meta }: LogEntry): void => {
    const { workflowId, runId, ...rest } = (meta ?? {}) as Record<string, unknown>;
    log[level.toLowerCase() as 'info']({ ...rest, workflow_id: workflowId, run_id: runId }, message);
  };
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
  const metricsServer =
    env.workerMetricsPort > 0
      ? await serveMetrics(metrics.registry, { port: env.workerMetricsPort, host: env.workerMetricsHost }, async () => {
          const res = await fetch(`http://127.0.0.1:${sdkMetricsPort}/metrics`, { signal: AbortSignal.timeout(2000) });
          return res.text();
        })
      : undefined;
  const connection = await NativeConnection.connect(env.temporal);
  const worker = await createWorker(config, connection, metrics);
  await ensureReconcileSchedules(new Client({ connection, namespace: env.temporalNamespace }), config);
  log.info({ task_queue: env.taskQueue, temporal: env.temporal.address, metrics_host: env.workerMetricsHost, metrics_port: env.workerMetricsPort }, 'worker polling');
  await worker.run();
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
