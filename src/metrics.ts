// Prometheus metrics (prom-client): one registry for the API, one for the worker.
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createApiMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: 'access_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status code',
      labelNames: ['method', 'route', 'status'] as const,
      registers,
    }),
    ensureDuration: new Histogram({
      name: 'access_ensure_duration_seconds',
      help: 'Time to answer POST /v1/access/ensure, by status code',
      labelNames: ['status'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    grants: new Counter({
      name: 'access_grants_total',
      help: 'Grants in ensure answers (dry runs excluded), by change and the status it left them in',
      labelNames: ['change', 'status'] as const,
      registers,
    }),
    workflowQueries: new Counter({
      name: 'access_workflow_queries_total',
      help: 'Workflow queries the API sent, by query name (each has a worker replay the run): the ensure path only; reads answer from visibility',
      labelNames: ['query'] as const,
      registers,
    }),
    factLookups: new Counter({
      name: 'access_fact_lookups_total',
      help: "Facts an ensure asked of an outside source (on call, tickets), by source and outcome: cached, answered, or unknown (down, slow past its timeout_ms, rate-limited)",
      labelNames: ['source', 'outcome'] as const,
      registers,
    }),
    factLookupDuration: new Histogram({
      name: 'access_fact_lookup_seconds',
      help: 'Time an outside source took to answer (or to be given up on), by source',
      labelNames: ['source'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    tokensChecked: tokensChecked(registers),
    auditWriteFailures: auditWriteFailures(registers),
  };
}
export type ApiMetrics = ReturnType<typeof createApiMetrics>;

export function createWorkerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    provisioningFailures: new Counter({
      name: 'access_provisioning_failures_total',
      help: 'Failed attempts to look up and create (provision) or delete (deprovision) an account assignment, by whether Temporal retries them and the error type',
      labelNames: ['operation', 'retryable', 'type'] as const,
      registers,
    }),
    expiryLag: new Histogram({
      name: 'access_expiry_lag_seconds',
      help: "Time from a grant's expires_at to its account assignment confirmed deleted",
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    operationsWaiting: new Gauge({
      name: 'access_assignment_operations_waiting',
      help: "Assignment creations and deletions this worker holds back for a slot (the instance's assignment_operations_in_flight, deletions first)",
      labelNames: ['instance'] as const,
      registers,
    }),
    auditWriteFailures: auditWriteFailures(registers),
  };
}
/** Bearer tokens checked: by signature, or remembered from an earlier check (the Authenticator's cache). */
export function tokensChecked(registers: Registry[] = []) {
  return new Counter({
    name: 'access_tokens_checked_total',
    help: 'Bearer tokens checked, by how: `signature` (verified against the issuer keys) or `remembered` (verified earlier and still valid)',
    labelNames: ['by'] as const,
    registers,
  });
}
export type TokensChecked = ReturnType<typeof tokensChecked>;

/** Failed writes to a tenant's audit store (the worker retries them; the API's ensure_denied is lost). */
function auditWriteFailures(registers: Registry[]) {
  return new Counter({ name: 'access_audit_write_failures_total', help: "Failed attempts to write an audit event to the tenant's store", registers });
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

/**
 * Serves GET /metrics: the registry, then whatever `extra` returns (the worker appends the
 * Temporal SDK's own Prometheus text, so one scrape target has both); and GET /readyz: 200 while
 * `ready` says so, else 503 with Retry-After.
 */
export function serveMetrics(
  registry: Registry,
  { port, host }: { port: number; host: string },
  extra: () => Promise<string> = async () => '',
  ready: () => Promise<boolean> = async () => true,
): Promise<Server> {
  const server = createServer((req, res) => {
    const route = req.method === 'GET' ? req.url?.split('?')[0] : undefined;
    if (route === '/readyz') {
      ready()
        .catch(() => false)
        .then((yes) => {
          if (yes) res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ready"}');
          else res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' }).end('{"status":"not ready"}');
        });
      return;
    }
    if (route !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    Promise.all([registry.metrics(), extra().catch(() => '')])
      .then(([own, more]) => {
        res.writeHead(200, { 'content-type': registry.contentType }).end(own + (more ? `\n${more}` : ''));
      })
      .catch(() => res.writeHead(500).end());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
