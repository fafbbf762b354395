// `npm run dev`: the whole service on local defaults (Temporal dev server, moto as AWS, worker,
// API), then a token and a curl line that activates a grant. Ctrl-C stops everything it started.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { reconcileScheduleId } from '../src/schedules';
import { WORKER_ENV, WORKER_NODE_FLAGS } from '../src/worker-process';
import type { Person } from './identity-provider';
import { AUDIT_BUCKET, AUDIT_PREFIX, repoRoot, startStack, waitFor } from './stack';

const TENANT = { id: '2489e9ad-2ee2-8e00-8ec9-32d5f69181c0', name: 'example' };
/** Who may sign in at the dev identity provider (by login name; any password): a requester, a reviewer, an auditor. */
const PEOPLE: Person[] = [
  { login: 'alice', email: 'alice@example.com', groups: ['engineering'] },
  { login: 'carol', email: 'carol@example.com', groups: ['platform-admins'] },
  { login: 'sam', email: 'sam@example.com', groups: ['security-auditors'] },
];
const [REQUESTER, REVIEWER] = PEOPLE;
const API_PORT = Number(process.env.PORT ?? 8080);
const UI_PORT = Number(process.env.TEMPORAL_UI_PORT ?? 8233);
const IDP_PORT = Number(process.env.IDP_PORT ?? 8180);

async function main(): Promise<void> {
  const stack = await startStack({
    // ACCESS_DEV_DIR: another folder for the stack's state (the README's test starts on a fresh one).
    dir: process.env.ACCESS_DEV_DIR ?? path.join(repoRoot, '.dev'),
    // Sessions end with grants here (aws.revoke_sessions), to show it: moto provisions on its own instance.
    tenants: [
      {
        ...TENANT,
        revokeSessions: true,
        accounts: { '111111111111': { environment: 'production', name: 'payments-prod' }, '123456789012': { environment: 'development', name: 'sandbox' } },
        identityProvider: { port: IDP_PORT, people: PEOPLE },
      },
    ],
    users: PEOPLE.map((p) => p.email),
    permissionSets: ['ReadOnlyAccess', 'AdministratorAccess', 'PowerUserAccess'],
    temporalPort: Number(process.env.TEMPORAL_PORT ?? 7233),
    temporalUiPort: UI_PORT,
  });
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children) child.kill('SIGTERM');
    await stack.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const childEnv = { ...process.env, ACCESS_CONFIG: stack.configPath, TEMPORAL_ADDRESS: stack.temporalAddress, PORT: String(API_PORT) };
  const processes = [
    { entry: 'dist/src/worker.js', flags: WORKER_NODE_FLAGS, env: { ...childEnv, ...WORKER_ENV } },
    { entry: 'dist/src/api/server.js', flags: [], env: childEnv },
  ];
  for (const { entry, flags, env } of processes) {
    const child = spawn(process.execPath, [...flags, path.join(repoRoot, entry)], { env, stdio: 'inherit' });
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) console.error(`${entry} exited with ${code}`);
    });
    children.push(child);
  }
  const readyz = `http://127.0.0.1:${API_PORT}/readyz`;
  await waitFor(`the API at ${readyz}`, () => fetch(readyz).then((r) => r.ok), 60_000);

  await firstReconciliation(stack.temporalAddress);
  const tokenOf = (p: Person) => stack.issueToken(TENANT.id, { sub: p.login, email: p.email, groups: p.groups }, { expiresIn: '12h' });
  const [token, reviewer] = await Promise.all([tokenOf(REQUESTER), tokenOf(REVIEWER)]);
  const idp = stack.identityProviderOf(TENANT.id)!;
  console.log(`
Access service running.
  API           http://127.0.0.1:${API_PORT}
  console       http://127.0.0.1:${API_PORT}/t/${TENANT.id}/
  Temporal      ${stack.temporalAddress} (Web UI http://127.0.0.1:${UI_PORT})
  AWS (moto)    ${stack.awsEndpoint}
  audit trail   s3://${AUDIT_BUCKET}/${AUDIT_PREFIX}/ in moto (Object Lock on); read it as a member of security-auditors
  sign-in       ${idp.issuer} (OpenID Connect; people: ${PEOPLE.map((p) => `${p.login} (${p.groups.join(', ')})`).join(', ')}; any password)
  config        ${stack.configPath}

Open the console and sign in as ${REQUESTER.login}; ${REVIEWER.login} reviews (in a private window: one person per browser):
  http://127.0.0.1:${API_PORT}/t/${TENANT.id}/

Sign in from the CLI (a browser opens; type ${REQUESTER.login}):
  npx access login --url http://127.0.0.1:${API_PORT} --tenant ${TENANT.id}

Or take a token for ${REQUESTER.login} (groups: ${REQUESTER.groups.join(', ')}), valid 12 hours, and the tenant, as the curl line and the CLI read them:
  export ACCESS_TOKEN=${token} ACCESS_TENANT_ID=${TENANT.id}
A reviewer's token (${REVIEWER.login}, ${REVIEWER.groups.join(', ')}):
  export REVIEWER_TOKEN=${reviewer}

Activate ReadOnlyAccess on account 123456789012 for an hour (run it twice: activated, then none):
  curl -s http://127.0.0.1:${API_PORT}/v1/access/ensure \\
    -H "Authorization: Bearer $ACCESS_TOKEN" -H "X-Tenant-ID: $ACCESS_TENANT_ID" -H 'Content-Type: application/json' \\
    -d '{"entitlements":[{"target":"AWS::Account::123456789012","role":"ReadOnlyAccess","duration_seconds":3600}],"justification":{"reason":"trying it out"}}'

Or with the CLI (npx access --help)${API_PORT === 8080 ? '' : `, after export ACCESS_URL=http://127.0.0.1:${API_PORT}`}:
  npx access ensure --target 123456789012 --role ReadOnlyAccess --duration 1h --reason 'trying it out' --wait
  npx access entitlements   # what you may ask for; eval "$(npx access completion bash)" completes ensure's --target and --role

Ctrl-C stops everything.`);
}

/**
 * Runs the tenant's first reconciliation round now rather than within its five minutes: the API
 * learns the permission sets (what `access entitlements` offers) from it.
 */
async function firstReconciliation(address: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const schedule = new Client({ connection }).schedule.getHandle(reconcileScheduleId(TENANT.id));
    // The worker makes the Schedule at its start-up.
    await waitFor('the reconciliation Schedule', () => schedule.describe().then(() => true, () => false), 60_000);
    await schedule.trigger();
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
