// API entry point (`npm run start:api`).
import type { Server, ServerResponse } from 'node:http';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { auditEventOf, checkAuditStores, createAuditWriter } from '../activities/audit';
import { type AppConfig, cursorKeyOf, env, loadConfig } from '../config';
import { FactSources } from '../integrations';
import { createLogger, type Logger } from '../log';
import { loadPolicySet, type PolicySet } from '../policy';
import { createApiMetrics } from '../metrics';
import { EnsureService, type RecordAudit } from '../service/ensure';
import { EntitlementService } from '../service/entitlements';
import { GrantService } from '../service/grants';
import { RequestService } from '../service/requests';
import { CallRates } from '../service/rate-limit';
import { GrantRuns } from '../service/runs';
import { AuditService } from '../service/audit';
import { SlackInteractions } from '../service/slack';
import { createConsole } from '../console';
import { createApp } from './app';
import { Authenticator } from './auth';

/** How long an ensure_denied answer waits for the audit store. */
const AUDIT_WAIT_MS = 5_000;

/** Everything the API needs, checked at start-up: a bad policy or key file stops it here. */
export function createApi(config: AppConfig, connection: Connection, logger?: Logger, draining?: () => boolean) {
  const byFolder = new Map<string, PolicySet>();
  const policies = new Map<string, PolicySet>();
  for (const tenant of config.tenants) {
    if (!byFolder.has(tenant.policies)) byFolder.set(tenant.policies, loadPolicySet(tenant.policies));
    policies.set(tenant.id, byFolder.get(tenant.policies)!);
  }
  const log = logger ?? createLogger('api');
  const metrics = createApiMetrics();
  const client = new Client({
    connection,
    namespace: env.temporalNamespace,
    interceptors: { workflow: [{ query: (input, next) => (metrics.workflowQueries.inc({ query: input.queryType }), next(input)) }] },
  });
  const auditWriter = createAuditWriter(config, log);
  // The answer waits this long at most for the store; a 403 is never withheld for it.
  const recordAudit: RecordAudit = async (record) => {
    try {
      await Promise.race([
        auditWriter.write(record),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${AUDIT_WAIT_MS} ms`)), AUDIT_WAIT_MS).unref()),
      ]);
    } catch (err) {
      metrics.auditWriteFailures.inc();
      // The event itself, so a log pipeline still has it.
      log.error({ audit: true, ...auditEventOf(record), err: (err as Error).message }, `audit: ${record.event} not written to the store`);
    }
  };
  const rates = new CallRates();
  const runs = new GrantRuns(client, policies, cursorKeyOf(config), rates, new Set(config.tenants.filter((t) => t.organization).map((t) => t.id)));
  const requests = new RequestService(runs);
  return createApp({
    ensurer: new EnsureService(
      runs,
      recordAudit,
      new FactSources(config.tenants, ({ source, outcome }, seconds) => {
        metrics.factLookups.inc({ source, outcome });
        if (seconds !== undefined) metrics.factLookupDuration.observe({ source }, seconds);
      }),
    ),
    grants: new GrantService(runs),
    entitlements: new EntitlementService(runs),
    requests,
    slack: new SlackInteractions(config, requests, rates),
    audit: new AuditService(auditWriter, policies),
    metrics,
    rates,
    auth: new Authenticator(config, metrics.tokensChecked),
    trustProxy: env.trustProxy,
    console: config.tenants.some((t) => t.auth.oidc?.console)
      ? createConsole({ config, publicOrigin: env.consoleUrl, sessionKey: env.consoleSessionKey, logger: log })
      : undefined,
    // Ready once the namespace answers, not merely the server: a fresh server answers before its
    // namespace is registered, and every call then fails (issue 35 §9).
    checkTemporal: async () => {
      await connection.workflowService.describeNamespace({ namespace: env.temporalNamespace });
    },
    draining,
    logger: log,
  });
}

/**
 * The API's Temporal connection: lazy, so the API starts (and /readyz says why not) while Temporal
 * is still coming up; and few retries, so a caller hears 503 in about a second, not after the
 * SDK's default of ten attempts.
 */
export function connectApi(address = env.temporal.address): Connection {
  const { tls, apiKey, metadata } = env.temporal;
  return Connection.lazy({ address, tls, apiKey, metadata, interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 4 }))] });
}

async function main(log: Logger): Promise<void> {
  const config = loadConfig();
  await checkAuditStores(config);
  const connection = connectApi();
  let draining = false;
  const app = createApi(config, connection, log, () => draining);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(env.port, () => resolve(s)).once('error', reject);
  });
  log.info({ port: env.port, temporal: env.temporal.address, task_queue: env.taskQueue }, 'access API listening');

  // Every response that starts after SIGTERM says `Connection: close`, so Node closes its
  // connection after it. Without that, a client reusing a kept-alive connection is served for as
  // long as it keeps asking, and the API stops only when the grace time cuts its requests off.
  const unanswered = new Set<ServerResponse>();
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (draining) {
      res.setHeader('Connection', 'close');
      return;
    }
    unanswered.add(res);
    res.once('close', () => unanswered.delete(res));
  });

  // SIGTERM: stop accepting, let in-flight requests finish (idle keep-alive connections are closed
  // at once, busy ones after their response; /readyz answers 503), close the Temporal connection,
  // exit 0. A request still running after the grace time is cut off; its grant is safe in
  // Temporal, and a retried ensure picks it up.
  const stop = (signal: string) => {
    draining = true;
    for (const res of unanswered) if (!res.headersSent) res.setHeader('Connection', 'close');
    log.info({ signal }, 'shutting down: draining in-flight requests');
    const forced = setTimeout(() => {
      log.warn('requests still running after the grace time; closing them');
      server.closeAllConnections();
    }, env.shutdownGraceMs).unref();
    server.close(() => {
      clearTimeout(forced);
      connection.close().finally(() => {
        log.info('access API stopped');
        process.exit(0);
      });
    });
    server.closeIdleConnections();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) {
  const log = createLogger('api');
  main(log).catch((err) => {
    // A bad config, policy or schema: the message names the file and the field (or line).
    log.fatal(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
