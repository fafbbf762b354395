// An API of a test's own on the shared stack, whose main tenant has the shipped policies and some
// of the test's beside them: for rules the shipped examples do not have (an auditor of one account,
// reviewers limited by duration); and, `adjust`ed, settings the shared API does not have (small
// rates).
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connectApi, createApi } from '../../src/api/server';
import { type AppConfig, loadConfig } from '../../src/config';
import { repoRoot } from '../../scripts/stack';
import { current, type Reply, TENANT, tokenFor } from './world';

export interface PolicyApi {
  url: string;
  /** `tenant`: the tenant asked of (TENANT unless said), with the user's token from its issuer. */
  call(method: 'GET' | 'POST', urlPath: string, opts: { as: Parameters<typeof tokenFor>[0]; body?: unknown; tenant?: string }): Promise<Reply>;
  stop(): Promise<void>;
}

/** `policies`: Cedar text, added to TENANT's policies as one more file (none: the shipped ones); `adjust` changes the stack's config. */
export async function startApiWithPolicies(policies?: string, adjust: (config: AppConfig) => void = () => {}): Promise<PolicyApi> {
  const config = loadConfig(current().stack.configPath);
  if (policies !== undefined) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'access-policies-'));
    cpSync(path.join(repoRoot, 'policies'), dir, { recursive: true });
    writeFileSync(path.join(dir, 'test-policies.cedar'), policies);
    config.tenants.find((t) => t.id === TENANT.id)!.policies = dir;
  }
  adjust(config);
  const connection = connectApi(current().stack.temporalAddress);
  const server = await new Promise<Server>((resolve) => {
    const s = createApi(config, connection).listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    async call(method, urlPath, { as, body, tenant = TENANT.id }) {
      const res = await fetch(url + urlPath, {
        method,
        headers: { authorization: `Bearer ${await tokenFor(as, tenant)}`, 'x-tenant-id': tenant, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json(), headers: res.headers };
    },
    async stop() {
      await new Promise((resolve) => server.close(resolve));
      await connection.close();
    },
  };
}
