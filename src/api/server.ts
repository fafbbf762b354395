// API entry point (`npm run start:api`).
import type { Server } from 'node:http';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { type AppConfig, env, loadConfig } from '../config';
import { loadPolicySet, type PolicySet } from '../policy';
import { AccessService } from '../service/access';
import { createApp } from './app';
import { Authenticator } from './auth';

/** Everything the API needs, checked at start-up: a bad policy or key file stops it here. */
export function createApi(config: AppConfig, connection: Connection) {
  const byFolder = new Map<string, PolicySet>();
  const policies = new Map<string, PolicySet>();
  for (const tenant of config.tenants) {
    if (!byFolder.has(tenant.policies)) byFolder.set(tenant.policies, loadPolicySet(tenant.policies));
    policies.set(tenant.id, byFolder.get(tenant.policies)!);
  }
  const client = new Client({ connection, namespace: env.temporalNamespace });
  return createApp({
    service: new AccessService(client, policies),
    auth: new Authenticator(config),
    checkTemporal: async () => {
      await connection.workflowService.getSystemInfo({});
    },
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

async function main(): Promise<void> {
  const config = loadConfig();
  const connection = connectApi();
  const server: Server = createApi(config, connection).listen(env.port, () => {
    console.log(`access API listening on :${env.port} (Temporal ${env.temporal.address}, queue ${env.taskQueue})`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
