// What operators see: the API and the worker as the processes they run (`node dist/src/...`), with
// their logs, metrics, shutdown and start-up checks; and each grant's summary in the Web UI.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { grantWorkflowId } from '../src/domain/grant';
import { freePort } from '../src/net';
import { searchAttributes } from '../src/workflows/messages';
import { WORKER_ENV, WORKER_NODE_FLAGS } from '../src/worker-process';
import { repoRoot } from '../scripts/stack';
import { current, ensure, eventually, freshAccount, grantReaching, OTHER_TENANT, target, TENANT, tokenFor, USERS } from './support/world';

interface Proc {
  proc: ChildProcess;
  output: () => string;
  /** JSON log lines written so far. */
  logs: () => Record<string, any>[];
  exited: Promise<number | null>;
}

function run(entry: 'api/server' | 'worker', env: Record<string, string>): Proc {
  const worker = entry === 'worker';
  const proc = spawn(process.execPath, [...(worker ? WORKER_NODE_FLAGS : []), path.join(repoRoot, 'dist/src', `${entry}.js`)], {
    env: { ...process.env, ...(worker ? WORKER_ENV : {}), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (chunk) => (out += chunk));
  proc.stderr!.on('data', (chunk) => (out += chunk));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, any>);
  return { proc, output: () => out, logs, exited };
}

/** The stack's config and Temporal, a task queue of its own, and a free port. */
async function processEnv(taskQueue: string, configPath = current().stack.configPath) {
  return {
    ACCESS_CONFIG: configPath,
    TEMPORAL_ADDRESS: current().stack.temporalAddress,
    TEMPORAL_TASK_QUEUE: taskQueue,
    PORT: String(await freePort()),
    WORKER_METRICS_PORT: String(await freePort()),
  };
}

async function startApi(env: Record<string, string>): Promise<Proc & { url: string }> {
  const api = run('api/server', env);
  const url = `http://127.0.0.1:${env.PORT}`;
  await eventually('the API to answer', () => fetch(`${url}/healthz`).then((r) => (r.ok ? true : undefined)));
  return { ...api, url };
}

async function ensureVia(url: string, token: string, tenant: string, body: unknown, requestId?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'x-tenant-id': tenant, 'content-type': 'application/json' };
  if (requestId) headers['x-request-id'] = requestId;
  const res = await fetch(`${url}/v1/access/ensure`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, requestId: res.headers.get('x-request-id'), body: (await res.json()) as any };
}

const scrape = async (url: string) => (await fetch(url)).text();
/** The value of one sample line, e.g. `metric{label="x"} 3`, or undefined. */
function sample(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}

async function stop(p: Proc): Promise<number | null> {
  p.proc.kill('SIGTERM');
  return p.exited;
}

describe('operations', function () {
  this.timeout(120_000);
  const running: Proc[] = [];
  afterEach(() => {
    for (const p of running.splice(0)) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
  });

  describe('API and worker processes', () => {
    it('npm run start:worker starts the worker with the memory settings the stack, the tests and the bench use', () => {
      const scripts = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts;
      const env = Object.entries(WORKER_ENV).map(([k, v]) => `${k}=${v}`);
      assert.equal(scripts['start:worker'], [...env, 'node', ...WORKER_NODE_FLAGS, 'dist/src/worker.js'].join(' '));
    });

    it('log JSON lines with request id, tenant, principal, grant and workflow ids, and never the token', async () => {
      const env = await processEnv(`ops-logs-${process.pid}`);
      const worker = run('worker', env);
      running.push(worker);
      const api = await startApi(env);
      running.push(api);
      const token = await tokenFor('alice');
      const account = freshAccount();
      const entitlement = { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 };
      const reply = await ensureVia(api.url, token, TENANT.id, { entitlements: [entitlement], dry_run: false }, 'ops-test-1');
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.equal(reply.requestId, 'ops-test-1');
      const grant = reply.body.grants[0];
      // A bad token and a token for another tenant are logged without the token too.
      const forged = `${token.slice(0, -6)}AAAAAA`;
      assert.equal((await ensureVia(api.url, forged, TENANT.id, { entitlements: [entitlement] })).status, 401);
      const oscars = await tokenFor('oscar');
      const mismatch = await ensureVia(api.url, oscars, TENANT.id, { entitlements: [entitlement] });
      assert.equal(mismatch.status, 403);
      assert.match(mismatch.requestId ?? '', /^[0-9a-f-]{36}$/, 'a request id is made up when none is given');

      const lines = await eventually('the request logs', async () => {
        const found = api.logs().filter((l) => l.request_id === 'ops-test-1');
        return found.some((l) => l.msg === 'request completed') ? found : undefined;
      });
      const ensured = lines.find((l) => l.msg === 'grant ensured');
      assert.ok(ensured, JSON.stringify(lines));
      assert.equal(ensured.tenant, TENANT.id);
      assert.equal(ensured.principal, USERS.alice.sub);
      assert.equal(ensured.grant_id, grant.id);
      assert.equal(ensured.workflow_id, grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: entitlement.target, role: entitlement.role }));
      const completed = lines.find((l) => l.msg === 'request completed')!;
      assert.equal(completed.res.status, 200);
      assert.equal(completed.tenant, TENANT.id);
      await eventually('the 401 and 403 to be logged', async () =>
        api.logs().filter((l) => l.msg === 'request completed' && [401, 403].includes(l.res?.status)).length >= 2 ? true : undefined,
      );

      assert.equal(await stop(api), 0);
      assert.equal(await stop(worker), 0);
      const output = api.output() + worker.output();
      for (const secret of [token, forged, oscars, token.split('.')[2], oscars.split('.')[2]]) {
        assert.ok(!output.includes(secret), 'a token reached the logs');
      }
      assert.ok(!/bearer/i.test(output), 'an Authorization header reached the logs');
    });

    it('export Prometheus metrics: requests, ensure latency, grants, provisioning failures, expiry lag, and the SDK’s own', async () => {
      const env = await processEnv(`ops-metrics-${process.pid}`);
      const worker = run('worker', env);
      running.push(worker);
      const api = await startApi(env);
      running.push(api);
      const workerMetrics = `http://127.0.0.1:${env.WORKER_METRICS_PORT}/metrics`;
      await eventually('the worker metrics endpoint', () => fetch(workerMetrics).then((r) => (r.ok ? true : undefined)));

      // A grant that expires in two seconds, and one whose permission set does not exist.
      const account = freshAccount();
      const short = await ensureVia(api.url, await tokenFor('alice'), TENANT.id, {
        entitlements: [{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 2 }],
      });
      assert.equal(short.status, 200, JSON.stringify(short.body));
      const failing = await ensureVia(api.url, await tokenFor('oscar'), OTHER_TENANT.id, {
        entitlements: [{ target: target(account), role: 'NoSuchPermissionSet' }],
      });
      assert.equal(failing.status, 200, JSON.stringify(failing.body));
      const invalid = await ensureVia(api.url, await tokenFor('alice'), TENANT.id, { entitlements: [] });
      assert.equal(invalid.status, 400);

      const apiText = await scrape(`${api.url}/metrics`);
      assert.equal(sample(apiText, 'access_http_requests_total{method="POST",route="/v1/access/ensure",status="200"}'), 2);
      assert.equal(sample(apiText, 'access_http_requests_total{method="POST",route="/v1/access/ensure",status="400"}'), 1);
      assert.equal(sample(apiText, 'access_ensure_duration_seconds_count{status="200"}'), 2);
      assert.equal(sample(apiText, 'access_grants_total{change="activated",status="provisioning"}'), 2);
      assert.ok(apiText.includes('access_ensure_duration_seconds_bucket{le="0.5",status="200"}'));

      const workerText = await eventually('expiry lag and a provisioning failure in the worker metrics', async () => {
        const text = await scrape(workerMetrics);
        const lag = sample(text, 'access_expiry_lag_seconds_count');
        const failed = sample(text, 'access_provisioning_failures_total{operation="provision",retryable="false",type="PermissionSetNotFound"}');
        return lag === 1 && failed === 1 ? text : undefined;
      });
      assert.ok(sample(workerText, 'access_expiry_lag_seconds_sum')! >= 0);
      assert.match(workerText, /^temporal_\w+/m, 'the Temporal SDK metrics are merged in');
      assert.match(workerText, /^nodejs_heap_size_used_bytes /m);

      assert.equal(await stop(api), 0);
      assert.equal(await stop(worker), 0);
      assert.ok(worker.logs().some((l) => l.msg === 'worker stopped'), worker.output());
    });

    it('the worker serves its metrics on loopback only, unless WORKER_METRICS_HOST says otherwise', async () => {
      // An address of this machine that is not loopback: where a neighbour would scrape from.
      const external = Object.values(os.networkInterfaces())
        .flat()
        .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
      assert.ok(external, 'this test needs a network interface besides loopback');
      const reachable = (host: string, port: string) =>
        fetch(`http://${host}:${port}/metrics`, { signal: AbortSignal.timeout(5000) }).then(
          (r) => r.ok,
          () => false,
        );

      const env = await processEnv(`ops-metrics-host-${process.pid}`);
      const worker = run('worker', env);
      running.push(worker);
      await eventually('the worker metrics endpoint', async () => ((await reachable('127.0.0.1', env.WORKER_METRICS_PORT)) ? true : undefined));
      assert.equal(await reachable(external, env.WORKER_METRICS_PORT), false, `metrics reachable at ${external}`);
      assert.equal(await stop(worker), 0);

      const open = { ...(await processEnv(`ops-metrics-host-${process.pid}`)), WORKER_METRICS_HOST: '0.0.0.0' };
      const exposed = run('worker', open);
      running.push(exposed);
      await eventually('the worker metrics endpoint on every interface', async () => ((await reachable(external, open.WORKER_METRICS_PORT)) ? true : undefined));
      assert.equal(await stop(exposed), 0);
    });

    it('on SIGTERM the API finishes requests in flight, closes their connections after them, refuses new ones and exits 0', async () => {
      // No worker polls this queue yet, so an ensure that starts a grant waits for one.
      const env = await processEnv(`ops-drain-${process.pid}`);
      const api = await startApi(env);
      running.push(api);
      const token = await tokenFor('alice');
      const entitlementOn = (account: string) => ({ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 });
      const first = entitlementOn(freshAccount());
      const inFlight = ensureVia(api.url, token, TENANT.id, { entitlements: [first] });
      // A second one on a kept-alive connection: it must not keep that connection open after it.
      const second = entitlementOn(freshAccount());
      const agent = new http.Agent({ keepAlive: true });
      const keptAlive = new Promise<{ status?: number; connection?: string }>((resolve, reject) => {
        const req = http.request(`${api.url}/v1/access/ensure`, {
          method: 'POST',
          agent,
          headers: { authorization: `Bearer ${token}`, 'x-tenant-id': TENANT.id, 'content-type': 'application/json' },
        });
        req.once('response', (res) => {
          res.resume().once('end', () => resolve({ status: res.statusCode, connection: res.headers.connection }));
        });
        req.once('error', reject);
        req.end(JSON.stringify({ entitlements: [second] }));
      });
      for (const { target: t, role } of [first, second]) {
        const workflowId = grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: t, role });
        await eventually('the grant workflow to start', () => current().temporal.workflow.getHandle(workflowId).describe().then(() => true));
      }

      api.proc.kill('SIGTERM');
      await eventually('the API to stop accepting', () =>
        fetch(`${api.url}/healthz`).then(
          () => undefined,
          () => true,
        ),
      );
      assert.equal(api.proc.exitCode, null, `the API waits for the requests in flight:\n${api.output()}`);
      const worker = run('worker', env);
      running.push(worker);
      const reply = await inFlight;
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.equal(reply.body.grants[0].change, 'activated');
      assert.deepEqual(await keptAlive, { status: 200, connection: 'close' });
      assert.equal(await api.exited, 0);
      assert.ok(!api.logs().some((l) => l.msg.includes('grace time')), 'the API stopped without cutting anything off');
      agent.destroy();
      assert.equal(await stop(worker), 0);
    });

    it('refuse to start on a bad config, policy or schema, naming the file and the field', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'access-startup-'));
      const config = parseYaml(readFileSync(current().stack.configPath, 'utf8'));
      const write = (name: string, value: unknown) => {
        const file = path.join(dir, name);
        writeFileSync(file, toYaml(value));
        return file;
      };
      const policies = (name: string, change: (folder: string) => void) => {
        const folder = path.join(dir, name);
        cpSync(path.join(repoRoot, 'policies'), folder, { recursive: true });
        change(folder);
        return write(`${name}.yaml`, { tenants: [{ ...config.tenants[0], policies: folder }] });
      };
      const cases: [string, 'api/server' | 'worker', string, RegExp[]][] = [
        ['bad config (API)', 'api/server', write('bad-region.yaml', { tenants: [{ ...config.tenants[0], aws: { ...config.tenants[0].aws, region: 7 } }] }), [/tenants\.0\.aws\.region/]],
        ['bad config (worker)', 'worker', write('bad-arn.yaml', { tenants: [{ ...config.tenants[0], aws: { ...config.tenants[0].aws, sso_instance_arn: 'nope' } }] }), [/tenants\.0\.aws\.sso_instance_arn/]],
        ['bad policy', 'api/server', policies('bad-policy', (f) => appendFileSync(path.join(f, 'read-only.cedar'), '\n@id("broken")\npermit (principal, action, resource) when { context.nope };\n')), [/read-only\.cedar/, /nope/]],
        [
          'two tenants on one issuer and audience that required_claims do not tell apart (API)',
          'api/server',
          write('shared-issuer.yaml', { tenants: [config.tenants[0], { ...config.tenants[1], auth: config.tenants[0].auth }] }),
          [new RegExp(config.tenants[0].id), new RegExp(config.tenants[1].id), /required_claims/],
        ],
        ['bad schema', 'api/server', policies('bad-schema', (f) => appendFileSync(path.join(f, 'schema.cedarschema'), '\nentity Broken {\n')), [/schema\.cedarschema/]],
      ];
      for (const [what, entry, file, patterns] of cases) {
        const p = run(entry, { ...(await processEnv('ops-startup', file)) });
        running.push(p);
        const code = await p.exited;
        assert.equal(code, 1, `${what}: exit code`);
        const output = p.output();
        assert.ok(output.includes(path.basename(file)) || patterns.some((re) => re.test(output)), `${what}: ${output}`);
        assert.ok(output.includes(dir), `${what} names the file: ${output}`);
        for (const re of patterns) assert.match(output, re, `${what}: ${output}`);
      }
    });
  });

  describe('Temporal Web UI', () => {
    it('shows what the requester wrote as plain text: a reason adds no heading, paragraph or link', async () => {
      const account = freshAccount();
      const entitlement = { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 };
      await ensure([entitlement], { reason: 'fix\n\n# Approved by admin\n[click](http://evil) *now*', attachments: ['<b>OPS-1</b>'] });
      const handle = current().temporal.workflow.getHandle(
        grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: entitlement.target, role: entitlement.role }),
      );
      const details = (await (await handle.describe()).staticDetails()) ?? '';
      assert.ok(details.includes('Reason: fix \\# Approved by admin \\[click\\]\\(http://evil\\) \\*now\\*'), details);
      assert.ok(details.includes('Attachments: \\<b\\>OPS-1\\</b\\>'), details);
      assert.doesNotMatch(details, /^#/m, 'a line of its own that starts a heading');
    });
    it('shows who, what and until when: static summary, current details and AccessExpiresAt', async () => {
      const account = freshAccount();
      const entitlement = { target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 };
      const reply = await ensure([entitlement], { reason: 'looking at logs' });
      const active = await grantReaching(reply.body.grants[0].id, 'active');
      const handle = current().temporal.workflow.getHandle(
        grantWorkflowId({ tenantId: TENANT.id, principalId: 'alice', target: entitlement.target, role: entitlement.role }),
      );
      const described = await handle.describe();
      assert.equal(await described.staticSummary(), `alice (alice@example.com): ReadOnlyAccess on ${account} for 600s (auto-approved)`);
      assert.match((await described.staticDetails()) ?? '', /Reason: looking at logs/);
      const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      assert.match(metadata.currentDetails ?? '', new RegExp(`active until ${active.expires_at}`));
      await eventually('AccessExpiresAt to be the grant’s expires_at', async () => {
        const value = (await handle.describe()).typedSearchAttributes.get(searchAttributes.expiresAt);
        return value?.toISOString() === active.expires_at ? true : undefined;
      });

      const extended = await ensure([{ ...entitlement, duration_seconds: 3600 }]);
      assert.equal(extended.body.grants[0].change, 'extended');
      await eventually('AccessExpiresAt to follow the extension', async () => {
        const value = (await handle.describe()).typedSearchAttributes.get(searchAttributes.expiresAt);
        return value?.toISOString() === extended.body.grants[0].expires_at ? true : undefined;
      });
      const found = await eventually('the grant to be listed by AccessExpiresAt', async () => {
        const query = `AccessGrantId = '${active.id}' AND AccessExpiresAt > '${new Date(Date.parse(active.expires_at!) + 1000).toISOString()}'`;
        for await (const info of current().temporal.workflow.list({ query })) return info.workflowId;
        return undefined;
      });
      assert.equal(found, handle.workflowId);
    });
  });
});
