// The world every scenario runs in: the stack (Temporal, moto), one IAM Identity Center instance
// per bench tenant (and the instances and worlds of the scenarios that need their own), the config
// rewritten for them, and the worker, the API and the floors as processes. `startBench` hands the
// scenarios a `Bench`: what they call and how they call it.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IdentitystoreClient, CreateUserCommand, ConflictException, GetUserIdCommand } from '@aws-sdk/client-identitystore';
import {
  SSOAdminClient,
  ListInstancesCommand,
  CreatePermissionSetCommand,
  DescribePermissionSetCommand,
  paginateListPermissionSets,
  paginateListAccountAssignmentsForPrincipal,
} from '@aws-sdk/client-sso-admin';
import { Client, Connection } from '@temporalio/client';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { awsClientConfig, type Child, freePort, repoRoot, startStack, waitFor, type Stack } from '../scripts/stack';
import { loadConfig } from '../src/config';
import { grantWorkflowId, type GrantView } from '../src/domain/grant';
import { grantStateQuery, revokeSignal } from '../src/workflows/messages';
import { FaultProxy } from '../test/support/fault-proxy';
import { startFakeJira } from '../test/support/jira';
import { startFakePagerDuty } from '../test/support/pagerduty';
import { FLOOR_TASK_QUEUE, type FloorAws } from './floor';
import { closedLoop, type LoadSpec } from './load';
import { seedBenchOrganization } from './organization';
import { runOf, startNode, stopProcs } from './processes';
import {
  account,
  BENCH_GRANTS,
  CATALOGUE_ENVIRONMENTS,
  CATALOGUE_TENANT,
  CONSOLE_TENANT,
  FACTS_TENANT,
  FACTS_TICKET,
  log,
  ORGANIZATION_TENANT,
  READS_TENANT,
  RECONCILE_TENANT,
  REGIONS,
  ROLE,
  settings,
  sleep,
  type TenantSetup,
  USER,
} from './settings';

// ---------------------------------------------------------------------------------------------
// The emulated AWS: one IAM Identity Center instance per region.

/** `seed` with clients of the region's IAM Identity Center instance and identity store. */
export async function withInstance<T>(
  endpoint: string,
  region: string,
  seed: (aws: { sso: SSOAdminClient; ids: IdentitystoreClient; instanceArn: string; identityStoreId: string }) => Promise<T>,
): Promise<T> {
  const cfg = { ...awsClientConfig(endpoint), region };
  const sso = new SSOAdminClient(cfg);
  const ids = new IdentitystoreClient(cfg);
  try {
    const { Instances } = await sso.send(new ListInstancesCommand({}));
    return await seed({ sso, ids, instanceArn: Instances![0].InstanceArn!, identityStoreId: Instances![0].IdentityStoreId! });
  } finally {
    sso.destroy();
    ids.destroy();
  }
}

export function seedRegion(endpoint: string, region: string): Promise<Omit<TenantSetup, 'id' | 'token'>> {
  return withInstance(endpoint, region, async ({ sso, ids, instanceArn, identityStoreId }) => {
    try {
      await ids.send(
        new CreateUserCommand({
          IdentityStoreId: identityStoreId,
          UserName: USER.email,
          DisplayName: 'Bench User',
          Name: { GivenName: 'Bench', FamilyName: 'User' },
          Emails: [{ Value: USER.email, Primary: true, Type: 'work' }],
        }),
      );
    } catch (err) {
      if (!(err instanceof ConflictException)) throw err;
    }
    const { UserId } = await ids.send(
      new GetUserIdCommand({ IdentityStoreId: identityStoreId, AlternateIdentifier: { UniqueAttribute: { AttributePath: 'userName', AttributeValue: USER.email } } }),
    );
    let permissionSetArn: string | undefined;
    for await (const page of paginateListPermissionSets({ client: sso }, { InstanceArn: instanceArn })) {
      for (const arn of page.PermissionSets ?? []) {
        const { PermissionSet } = await sso.send(new DescribePermissionSetCommand({ InstanceArn: instanceArn, PermissionSetArn: arn }));
        if (PermissionSet?.Name === ROLE) permissionSetArn = arn;
      }
    }
    permissionSetArn ??= (await sso.send(new CreatePermissionSetCommand({ InstanceArn: instanceArn, Name: ROLE }))).PermissionSet!.PermissionSetArn!;
    return { region, instanceArn, identityStoreId, userId: UserId!, permissionSetArn };
  });
}

/**
 * The reconciliation scenario's instance: its users (each a principal with tokens of its own), the
 * tenant's listed accounts and the instance's permission sets, with a proxy in front of moto that
 * counts the worker's calls to it.
 */
export function seedReconcileWorld(endpoint: string) {
  return withInstance(endpoint, RECONCILE_TENANT.region, async ({ sso, ids, instanceArn, identityStoreId }) => {
    const users = Array.from({ length: settings.reconcileUsers }, (_, i) => ({ sub: `bench-r${i}`, email: `bench-r${i}@example.com`, groups: ['engineering'] }));
    for (const u of users) {
      await ids.send(
        new CreateUserCommand({ IdentityStoreId: identityStoreId, UserName: u.email, DisplayName: u.sub, Name: { GivenName: 'Bench', FamilyName: u.sub }, Emails: [{ Value: u.email, Primary: true, Type: 'work' }] }),
      );
    }
    const permissionSets = [ROLE, ...Array.from({ length: settings.reconcilePermissionSets - 1 }, (_, i) => `Team${i}Access`)];
    for (const name of permissionSets) await sso.send(new CreatePermissionSetCommand({ InstanceArn: instanceArn, Name: name }));
    const proxy = await FaultProxy.start();
    await proxy.upstream(endpoint);
    return { instanceArn, identityStoreId, users, accounts: Array.from({ length: settings.reconcileAccounts }, (_, i) => account(6, i)), permissionSets, proxy };
  });
}

/**
 * The entitlements scenario's policies: the shipped ones, and engineering may request every team's
 * role (`Team{n}Access`), so every permission set of the instance is on offer.
 */
export function cataloguePolicies(dir: string): string {
  const folder = path.join(dir, 'catalogue-policies');
  cpSync(path.join(repoRoot, 'policies'), folder, { recursive: true });
  writeFileSync(
    path.join(folder, 'teams.cedar'),
    '@id("teams-request")\npermit (principal in Group::"engineering", action == Action::"request", resource)\nwhen { context.role like "Team*Access" };\n',
  );
  return folder;
}

/** The entitlements scenario's instance: the shipped policies' four roles and a team role each for the rest, with descriptions. */
export function seedCatalogueWorld(endpoint: string) {
  return withInstance(endpoint, CATALOGUE_TENANT.region, async ({ sso, instanceArn, identityStoreId }) => {
    const named = ['ReadOnlyAccess', 'AdministratorAccess', 'PowerUserAccess', 'SecurityAudit'];
    const names = [...named, ...Array.from({ length: settings.entitlementsPermissionSets - named.length }, (_, n) => `Team${n}Access`)];
    for (const Name of names) await sso.send(new CreatePermissionSetCommand({ InstanceArn: instanceArn, Name, Description: `${Name}: what the bench offers` }));
    return { instanceArn, identityStoreId };
  });
}

/** Account ids of the bench user's assignments in one region. */
export async function assignedAccounts(sso: SSOAdminClient, t: TenantSetup): Promise<Set<string>> {
  for (let attempt = 1; ; attempt++) {
    const found = new Set<string>();
    try {
      const pages = paginateListAccountAssignmentsForPrincipal({ client: sso }, { InstanceArn: t.instanceArn, PrincipalId: t.userId, PrincipalType: 'USER' });
      for await (const page of pages) for (const a of page.AccountAssignments ?? []) if (a.AccountId) found.add(a.AccountId);
      return found;
    } catch (err) {
      // moto's page token names an assignment; one deleted meanwhile (what the expiry scenario
      // watches for) invalidates it: list again from the start.
      if ((err as Error).name !== 'InvalidToken' || attempt >= 5) throw err;
    }
  }
}
// ---------------------------------------------------------------------------------------------
// The running bench.

export interface Bench {
  stack: Stack;
  /** The run's working folder (the stack's, the processes' logs). */
  dir: string;
  /** The environment of the worker, API and floor processes. */
  env: { ACCESS_CONFIG: string; TEMPORAL_ADDRESS: string };
  configPath: string;
  /** The worker's pacing of the bench tenants, as it reads it. */
  callsPerSecond: number;
  /** The bench tenants, one per instance (BENCH_INSTANCES), and a client of each one's instance straight to moto. */
  tenants: TenantSetup[];
  ssoOf: SSOAdminClient[];
  /** In front of moto for the bench tenants and the floors: its log dates their assignment calls. */
  awsProxy: FaultProxy;
  reconcileWorld?: Awaited<ReturnType<typeof seedReconcileWorld>>;
  organizationWorld?: { topOus: string[]; accounts: number };
  sources?: { pagerduty: { requests: number }; jira: { requests: number } };
  temporal: Client;
  worker: Child;
  workerMetricsPort: number;
  /** The API process: a scenario may start it afresh (reads). */
  apiProc: Child;
  apiPort: number;
  api: string;
  floor: string;
  /** The results so far, by scenario; `save()` writes them (reads does, while it waits). */
  results: Record<string, unknown>;
  save(): void;
  /** Whether a scenario after `name` is to run. */
  runsAfter(name: string): boolean;
  ok(url: string): () => Promise<boolean>;
  tenantOf(i: number): TenantSetup;
  ensureBody(acct: string, duration: number): string;
  headersOf(t: { id: string; token: string }): Record<string, string>;
  /** The i-th tenant's ensure of ROLE on `acct`: the grant's view. */
  ensure(i: number, acct: string, duration: number, base?: string): Promise<GrantView>;
  /** Ensures until the grant is active, as a client polls (CONTRACT: ensure again to poll). */
  untilActive(i: number, acct: string, duration: number, pollMs?: number, base?: string): Promise<GrantView>;
  /** Checks an ensure's answer: its first grant's change. */
  changeIs(change: string): (body: string) => boolean;
  /** An API call as a user of the tenant, asked again while the dev server is busy (see `apiCall`). */
  apiCall<T = any>(tenantId: string, token: string, method: string, url: string, body?: unknown): Promise<T>;
  /** A 12-hour ensure of `role` on `acct`: the grant's view. */
  ask(tenantId: string, token: string, acct: string, role: string): Promise<GrantView>;
  /** A closed grant run: a reviewed request, withdrawn as an operator does, by the workflow's id (the run closes on its own meanwhile). */
  withdrawnRun(tenantId: string, token: string, principalId: string, acct: string): Promise<void>;
  /** The no-change pool: active grants asked for again, and the floor's workflows beside them (made at the first call). */
  noChangePool(): Promise<{ noChangeSpec: LoadSpec; queryFloorSpec: LoadSpec }>;
}

/**
 * Runs `measure` on a bench started for `scenarios` (their names, in the order they run), then
 * stops everything it started. `save` writes the results (the bench's `save()`).
 */
export async function withBench(scenarios: string[], save: (bench: Bench) => void, measure: (bench: Bench) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'access-bench-'));
  log('settings', settings, 'work dir', dir);
  const tenantIds = Array.from({ length: settings.instances }, (_, i) => `b0000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const wants = (name: string) => scenarios.includes(name);
  // The bench user is on call at level 1, and the ticket is theirs: every lookup finds something.
  const sources = wants('facts') ? { pagerduty: await startFakePagerDuty('bench-pd'), jira: await startFakeJira('bench@example.com', 'bench-jira') } : undefined;
  sources?.pagerduty.onCall(USER.email, [{ schedule: 'payments-primary', service: 'payments', level: 1, end: new Date(Date.now() + 24 * 3600_000) }]);
  sources?.jira.put({ key: FACTS_TICKET, status: 'in_progress', assignee: USER.email });
  process.env.BENCH_PAGERDUTY_TOKEN = 'bench-pd';
  process.env.BENCH_JIRA_TOKEN = 'bench-jira';
  const stack: Stack = await startStack({
    dir,
    tenants: [
      ...tenantIds.map((id, i) => ({ id, name: `bench${i}`, grants: BENCH_GRANTS })),
      ...(wants('reads') ? [{ id: READS_TENANT.id, name: 'reads', grants: BENCH_GRANTS }] : []),
      ...(wants('reconcile') ? [{ id: RECONCILE_TENANT.id, name: 'reconcile', grants: BENCH_GRANTS }] : []),
      ...(wants('entitlements') ? [{ id: CATALOGUE_TENANT.id, name: 'catalogue', grants: BENCH_GRANTS, policies: cataloguePolicies(dir) }] : []),
      ...(wants('organization') ? [{ id: ORGANIZATION_TENANT.id, name: 'organization', grants: BENCH_GRANTS }] : []),
      ...(sources
        ? [{
            id: FACTS_TENANT.id,
            name: 'facts',
            grants: BENCH_GRANTS,
            oncall: { source: 'pagerduty', url: sources.pagerduty.url, token_env: 'BENCH_PAGERDUTY_TOKEN' },
            tickets: { source: 'jira', url: sources.jira.url, username: 'bench@example.com', token_env: 'BENCH_JIRA_TOKEN' },
          }]
        : []),
      ...(wants('console')
        ? [{
            id: CONSOLE_TENANT.id,
            name: 'console',
            grants: BENCH_GRANTS,
            accounts: Object.fromEntries(Array.from({ length: 50 }, (_, n) => [account(9, n), { environment: 'development', name: `console-${n}` }])),
            identityProvider: { people: [{ login: USER.sub, email: USER.email, groups: ['engineering'] }] },
          }]
        : []),
    ],
    users: [USER.email],
    permissionSets: [ROLE],
  });
  let awsProxy: FaultProxy | undefined;
  let reconcileWorld: Bench['reconcileWorld'];
  try {
    Object.assign(runOf, { dir, awsPort: new URL(stack.awsEndpoint).port, temporalData: stack.temporalDataDir ?? '' });
    // The bench tenants' and the floors' IAM Identity Center calls go through a proxy in front of
    // moto, whose log dates each DeleteAccountAssignment as it arrives (the expiry scenario).
    awsProxy = await FaultProxy.start();
    await awsProxy.upstream(stack.awsEndpoint);
    const proxyUrl = awsProxy.url;
    // Each tenant on its own instance: rewrite the stack's config with one region per tenant.
    const seeded = await Promise.all(tenantIds.map((_, i) => seedRegion(stack.awsEndpoint, REGIONS[i])));
    const readsSeed = wants('reads') ? await seedRegion(stack.awsEndpoint, READS_TENANT.region) : undefined;
    reconcileWorld = wants('reconcile') ? await seedReconcileWorld(stack.awsEndpoint) : undefined;
    const catalogueWorld = wants('entitlements') ? await seedCatalogueWorld(stack.awsEndpoint) : undefined;
    const organizationSeed = wants('organization') ? await seedRegion(stack.awsEndpoint, ORGANIZATION_TENANT.region) : undefined;
    if (organizationSeed) log(`organization: seeding ${settings.organizationAccounts} accounts in ${settings.organizationOus} OUs`);
    const organizationWorld = organizationSeed ? await seedBenchOrganization(stack.awsEndpoint, settings.organizationAccounts, settings.organizationOus) : undefined;
    const config = parseYaml(readFileSync(stack.configPath, 'utf8')) as { tenants: ({ id: string; aws: Record<string, unknown> } & Record<string, unknown>)[] };
    config.tenants.forEach((t, i) => {
      if (t.id === RECONCILE_TENANT.id) {
        const w = reconcileWorld!;
        // AWS's own quota (the default limits), through the proxy that counts the calls; the rounds measured are the scenario's own.
        Object.assign(t.aws, { region: RECONCILE_TENANT.region, sso_instance_arn: w.instanceArn, identity_store_id: w.identityStoreId, endpoint: w.proxy.url });
        Object.assign(t, { accounts: Object.fromEntries(w.accounts.map((a) => [a, {}])), reconcile_interval_seconds: 86_400 });
        return;
      }
      if (t.id === ORGANIZATION_TENANT.id) {
        const s = organizationSeed!;
        Object.assign(t.aws, { region: s.region, sso_instance_arn: s.instanceArn, identity_store_id: s.identityStoreId });
        // The first read starts with the worker (its Schedule runs at creation); the refresh is triggered.
        Object.assign(t, { organization: { roots_or_ous: organizationWorld!.topOus, environment_tag: 'env', refresh_interval_seconds: 86_400 }, reconcile_interval_seconds: 86_400 });
        return;
      }
      // The console's and the facts' tenants keep the instances the stack made for them.
      if (t.id === CONSOLE_TENANT.id || t.id === FACTS_TENANT.id) return;
      if (t.id === CATALOGUE_TENANT.id) {
        const w = catalogueWorld!;
        Object.assign(t.aws, { region: CATALOGUE_TENANT.region, sso_instance_arn: w.instanceArn, identity_store_id: w.identityStoreId });
        const accounts = Array.from({ length: settings.entitlementsAccounts }, (_, n) => {
          const environment = CATALOGUE_ENVIRONMENTS[n % CATALOGUE_ENVIRONMENTS.length];
          return [account(7, n), { environment, name: `team-${Math.floor(n / CATALOGUE_ENVIRONMENTS.length)}-${environment}` }];
        });
        // Its first round when the scenario asks for it (the Schedule's own interval is far off).
        Object.assign(t, { accounts: Object.fromEntries(accounts), reconcile_interval_seconds: 86_400 });
        return;
      }
      const s = t.id === READS_TENANT.id ? readsSeed! : seeded[i];
      Object.assign(t.aws, { region: s.region, sso_instance_arn: s.instanceArn, identity_store_id: s.identityStoreId });
      if (t.id !== READS_TENANT.id) t.aws.endpoint = proxyUrl;
      // The reads world's active grants are a fixture, made faster than AWS's quota allows (moto has none).
      if (t.id === READS_TENANT.id) t.aws.limits = { calls_per_second: 400, assignment_operations_in_flight: 200 };
    });
    const configPath = path.join(dir, 'bench.yaml');
    writeFileSync(configPath, toYaml(config));
    // The worker's pacing, as it reads it: the expiry row's provider-quota floor is computed from it.
    const callsPerSecond = loadConfig(configPath).tenants[0].aws.limits.calls_per_second;
    const tenants: TenantSetup[] = await Promise.all(
      seeded.map(async (s, i) => ({ ...s, id: tenantIds[i], token: await stack.issueToken(tenantIds[i], USER, { expiresIn: '4h' }) })),
    );
    const ssoOf = tenants.map((t) => new SSOAdminClient({ ...awsClientConfig(stack.awsEndpoint), region: t.region }));

    const [apiPort, floorPort, workerMetricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const env = { ACCESS_CONFIG: configPath, TEMPORAL_ADDRESS: stack.temporalAddress };
    const worker = startNode('worker', 'src/worker.js', [], { ...env, WORKER_METRICS_PORT: String(workerMetricsPort) }, dir);
    const apiProc = startNode('api', 'src/api/server.js', [], { ...env, PORT: String(apiPort) }, dir);
    const floorAws: FloorAws = { endpoint: proxyUrl, regions: tenants.map(({ region, instanceArn, userId, permissionSetArn }) => ({ region, instanceArn, userId, permissionSetArn })) };
    startNode('floor-worker', 'bench/floor.js', ['worker'], { ...env, BENCH_AWS: JSON.stringify(floorAws) }, dir);
    startNode('floor-server', 'bench/floor.js', ['server'], { ...env, PORT: String(floorPort), BENCH_AWS: JSON.stringify(floorAws) }, dir);
    const api = `http://127.0.0.1:${apiPort}`;
    const floor = `http://127.0.0.1:${floorPort}`;
    const ok = (url: string) => async () => (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok;
    await waitFor('API', ok(`${api}/readyz`), 60_000);
    await waitFor('floor server', ok(`${floor}/healthz`), 60_000);
    const temporal = new Client({ connection: await Connection.connect({ address: stack.temporalAddress }) });

    const tenantOf = (i: number) => tenants[i % tenants.length];
    const ensureBody = (acct: string, duration: number) =>
      JSON.stringify({ entitlements: [{ target: `AWS::Account::${acct}`, role: ROLE, duration_seconds: duration }], justification: { reason: 'bench' } });
    const headersOf = (t: { id: string; token: string }) => ({ authorization: `Bearer ${t.token}`, 'x-tenant-id': t.id });
    async function ensure(i: number, acct: string, duration: number, base = api): Promise<GrantView> {
      const t = tenantOf(i);
      const res = await fetch(`${base}/v1/access/ensure`, { method: 'POST', headers: { 'content-type': 'application/json', ...headersOf(t) }, body: ensureBody(acct, duration) });
      const body = (await res.json()) as { grants: GrantView[] };
      if (!res.ok) throw Object.assign(new Error(`ensure ${acct}: HTTP ${res.status} ${JSON.stringify(body)}`), { status: res.status });
      return body.grants[0];
    }
    /** Asked again while provisioning, and after a 503 (a busy server now and then while fixtures are made; the call changed nothing). */
    async function untilActive(i: number, acct: string, duration: number, pollMs = 250, base = api): Promise<GrantView> {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const view = await ensure(i, acct, duration, base).catch((err: Error & { status?: number }) => {
          if (err.status !== 503 || Date.now() > deadline) throw err;
          return undefined;
        });
        if (!view) {
          await sleep(1000);
          continue;
        }
        if (view.status === 'active') return view;
        if (view.status !== 'provisioning' || Date.now() > deadline) throw new Error(`grant on ${acct} is ${view.status}: ${JSON.stringify(view.diagnostics)}`);
        await sleep(pollMs);
      }
    }
    /** A busy dev server answers 503 with Retry-After now and then while a fixture is made, and its visibility may list a grant made a moment ago later than the API waits for (404): both are asked again. */
    async function apiCall<T = any>(tenantId: string, token: string, method: string, url: string, body?: unknown): Promise<T> {
      const headers = { authorization: `Bearer ${token}`, 'x-tenant-id': tenantId, 'content-type': 'application/json' };
      for (let attempt = 1; ; attempt++) {
        const res = await fetch(`${api}${url}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
        const json = (await res.json()) as T;
        if (res.ok) return json;
        if ((res.status !== 503 && res.status !== 404) || attempt >= 30) throw new Error(`${method} ${url}: HTTP ${res.status} ${JSON.stringify(json)}`);
        await sleep(1000);
      }
    }
    async function ask(tenantId: string, token: string, acct: string, role: string): Promise<GrantView> {
      const reply = await apiCall<{ grants: GrantView[] }>(tenantId, token, 'POST', '/v1/access/ensure', {
        entitlements: [{ target: `AWS::Account::${acct}`, role, duration_seconds: 43200 }],
        justification: { reason: 'bench' },
      });
      return reply.grants[0];
    }
    let pool: ReturnType<Bench['noChangePool']> | undefined;
    const bench: Bench = {
      stack,
      dir,
      env,
      configPath,
      callsPerSecond,
      tenants,
      ssoOf,
      awsProxy,
      reconcileWorld,
      organizationWorld,
      sources,
      temporal,
      worker,
      workerMetricsPort,
      apiProc,
      apiPort,
      api,
      floor,
      results: {},
      save: () => save(bench),
      runsAfter: (name) => scenarios.indexOf(name) < scenarios.length - 1,
      ok,
      tenantOf,
      ensureBody,
      headersOf,
      ensure,
      untilActive,
      changeIs: (change) => (body) => (JSON.parse(body) as { grants: GrantView[] }).grants[0]?.change === change,
      apiCall,
      ask,
      async withdrawnRun(tenantId, token, principalId, acct) {
        await ask(tenantId, token, acct, 'AdministratorAccess');
        const key = { tenantId, principalId, target: `AWS::Account::${acct}`, role: 'AdministratorAccess' };
        await temporal.workflow.getHandle(grantWorkflowId(key)).signal(revokeSignal, { revokedBy: principalId, reason: 'bench: withdrawn' });
      },
      noChangePool: () => (pool ??= noChangePool(bench)),
    };

    // Warm-up: a few activations through everything, and one floor activation per region.
    await closedLoop(20, 4, async (i) => void (await untilActive(i, account(6, i), 3600)));
    await closedLoop(tenants.length, 4, async (i) => void (await fetch(`${floor}/floor/activate/${i}/${account(8, i)}`, { method: 'POST' })));
    await measure(bench);
  } finally {
    await stopProcs();
    await reconcileWorld?.proxy.close();
    await awsProxy?.close();
    await stack.stop();
    await Promise.all([sources?.pagerduty.close(), sources?.jira.close()]);
  }
}

/**
 * The grants the no-change ensures cycle through, created for 2 hours and asked for 1 (never
 * extended during the run), and the floors' held workflows (the no-change and extension pools),
 * which answer a query with a real grant's state.
 */
async function noChangePool(b: Bench): Promise<{ noChangeSpec: LoadSpec; queryFloorSpec: LoadSpec }> {
  log(`no-change: creating ${settings.noChangePool} grants`);
  await closedLoop(settings.noChangePool, settings.activationConcurrency, async (i) => void (await b.untilActive(i, account(1, i), 7200)));
  const sample = await b.temporal.workflow
    .getHandle(grantWorkflowId({ tenantId: b.tenants[0].id, principalId: USER.sub, target: `AWS::Account::${account(1, 0)}`, role: ROLE }))
    .query(grantStateQuery);
  const floorPool = Math.max(settings.noChangePool, settings.extendPool);
  for (let i = 0; i < floorPool; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, floorPool - i) }, (_, j) =>
        b.temporal.workflow.start('floorWorkflow', { taskQueue: FLOOR_TASK_QUEUE, workflowId: `floor-hold/${i + j}`, args: [{ state: sample, hold: true }] }),
      ),
    );
  }
  return {
    noChangeSpec: {
      url: b.api,
      request: (i) => ({ path: '/v1/access/ensure', headers: b.headersOf(b.tenantOf(i % settings.noChangePool)), body: b.ensureBody(account(1, i % settings.noChangePool), 3600) }),
      expect: b.changeIs('none'),
    },
    queryFloorSpec: { url: b.floor, request: (i) => ({ path: `/floor/query/floor-hold%2F${i % settings.noChangePool}` }) },
  };
}
