// Ready means ready (issue 35 §9): right after a fresh Temporal came up, /readyz said ready while
// the namespace was not there yet, and ensures answered 500 (NamespaceNotFoundError). Here the API
// and the worker start, as processes, on a namespace that appears only later.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { freePort, SEARCH_ATTRIBUTES } from '../scripts/stack';
import { apiProcess, workerProcess } from './support/processes';
import { current, eventually, freshAccount, target, TENANT, tokenFor } from './support/world';

describe('readiness before the namespace exists', function () {
  this.timeout(180_000);

  it('/readyz of the API and the worker is 503 and every call 503 with Retry-After until the namespace answers; then an ensure activates', async () => {
    const { stack } = current();
    const namespace = `late-${randomUUID().slice(0, 8)}`;
    const settings = {
      dir: mkdtempSync(path.join(os.tmpdir(), 'access-readiness-')),
      configPath: stack.configPath,
      temporalAddress: stack.temporalAddress,
      taskQueue: 'access-grants-readiness',
      namespace,
    };
    const workerPort = await freePort();
    const worker = await workerProcess(settings, { WORKER_METRICS_PORT: String(workerPort) });
    const api = await apiProcess(settings);
    const connection = await Connection.connect({ address: stack.temporalAddress });
    const headers = { authorization: `Bearer ${await tokenFor('alice')}`, 'x-tenant-id': TENANT.id, 'content-type': 'application/json' };
    const account = freshAccount();
    const ensure = () =>
      fetch(`${api.url}/v1/access/ensure`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ entitlements: [{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }] }),
      });
    const answer = async (res: Response) => ({ status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as any });
    // Started, not yet ready: start() resolves once each says it is (the worker polls, /readyz 200).
    const workerReady = worker.start();
    const apiReady = api.start();
    // Awaited below; a start that fails meanwhile is that failure, not an unhandled rejection.
    workerReady.catch(() => undefined);
    apiReady.catch(() => undefined);
    try {
      await eventually('the API to listen', () => fetch(`${api.url}/healthz`).then((r) => (r.ok ? true : undefined)));
      const workerReadyz = () => eventually("the worker's /readyz to answer", () => fetch(`http://127.0.0.1:${workerPort}/readyz`).then(answer), 10_000);
      // A few seconds: long enough for a process that would give up (or say ready) to do so.
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const unavailable = (what: string, reply: Awaited<ReturnType<typeof answer>>, code: string | null = 'unavailable') => {
          assert.equal(reply.status, 503, `${what}: ${JSON.stringify(reply.body)}`);
          assert.ok(Number(reply.retryAfter) >= 1, `${what}: Retry-After ${reply.retryAfter}`);
          if (code) assert.equal(reply.body.code, code, `${what}: ${JSON.stringify(reply.body)}`);
        };
        unavailable('API /readyz', await fetch(`${api.url}/readyz`).then(answer));
        unavailable('ensure', await ensure().then(answer));
        unavailable('list grants', await fetch(`${api.url}/v1/access/grants`, { headers }).then(answer));
        unavailable('worker /readyz', await workerReadyz(), null);
        assert.ok(worker.running, 'the worker waits for its namespace');
      }
      // One that is stopped while it waits ends at once (a supervisor's stop, a rollout).
      const other = await workerProcess({ ...settings, dir: mkdtempSync(path.join(os.tmpdir(), 'access-readiness-')), namespace: `${namespace}-never` });
      other.start().catch(() => undefined);
      await eventually('the other worker to wait', async () => (readFileSync(other.logFile, 'utf8').includes('waiting for the namespace') ? true : undefined));
      const stopping = Date.now();
      await other.stop();
      assert.ok(Date.now() - stopping < 3000, `stopped in ${Date.now() - stopping} ms`);
      assert.match(readFileSync(other.logFile, 'utf8'), /worker stopped before it polled/);

      await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
      await eventually('the search attributes to be registered', async () => {
        await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: SEARCH_ATTRIBUTES });
        return true;
      });
      await Promise.all([workerReady, apiReady]);
      assert.equal((await fetch(`http://127.0.0.1:${workerPort}/readyz`)).status, 200);
      const reply = await ensure().then(answer);
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const { id, change } = reply.body.grants[0];
      assert.equal(change, 'activated');
      await eventually('the grant to be active', async () => {
        const read = await fetch(`${api.url}/v1/access/grants/${id}`, { headers }).then(answer);
        return read.body.status === 'active' ? true : undefined;
      });
      const revoked = await fetch(`${api.url}/v1/access/grants/${id}/revoke`, { method: 'POST', headers, body: '{}' }).then(answer);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    } finally {
      await Promise.allSettled([workerReady, apiReady]);
      await Promise.all([worker.stop(), api.stop()]);
      await connection.close();
    }
  });
});
