// `npm run bench`: starts the stack as the tests do, runs each scenario against the real worker and
// API (separate processes, so their memory can be read) and against the floor it stands on
// (bench/floor.ts), and writes bench/results/results.{md,json}. Settings: see `settings` below.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IdentitystoreClient, CreateUserCommand, ConflictException, GetUserIdCommand } from '@aws-sdk/client-identitystore';
import {
  SSOAdminClient,
  CreateAccountAssignmentCommand,
  DescribeAccountAssignmentCreationStatusCommand,
  ListInstancesCommand,
  CreatePermissionSetCommand,
  DescribePermissionSetCommand,
  paginateListPermissionSets,
  paginateListAccountAssignmentsForPrincipal,
} from '@aws-sdk/client-sso-admin';
import { Client, Connection } from '@temporalio/client';
import autocannon from 'autocannon';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { awsClientConfig, type Child, freePort, repoRoot, startChild, startStack, stopChild, waitFor, type Stack } from '../scripts/stack';
import { pacer, semaphore, WIRE_SLACK_MS } from '../src/activities/aws';
import { FLEET_REFRESH_MS, pollersOf, presenceQueueOf } from '../src/activities/fleet';
import { env as workerEnv, loadConfig } from '../src/config';
import { WORKER_ENV, WORKER_NODE_FLAGS } from '../src/worker-process';
import { grantWorkflowId, type GrantView } from '../src/domain/grant';
import { grantStateQuery, revokeSignal } from '../src/workflows/messages';
import type { ReconcileReport } from '../src/workflows/reconcile';
import { loadPolicySet } from '../src/policy';
import { reconcileScheduleId } from '../src/schedules';
import { launchChromium, signedIn } from '../test/support/browser';
import { FaultProxy } from '../test/support/fault-proxy';
import { FLOOR_TASK_QUEUE, type FloorAws } from './floor';
import { organizationScenario, refreshFloor, seedBenchOrganization } from './organization';
import { startFakeJira } from '../test/support/jira';
import { startFakePagerDuty } from '../test/support/pagerduty';

const int = (name: string, fallback: number): number => {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got "${value}"`);
  return n;
};

const ints = (name: string, fallback: number[]): number[] => {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  return value.split(',').map((part, i) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be whole numbers separated by commas, got "${value}" (item ${i + 1})`);
    return n;
  });
};

/** The engine under test: the dev server, or with TEMPORAL_PERSISTENCE=postgres a server on PostgreSQL. */
const ENGINE =
  process.env.TEMPORAL_PERSISTENCE === 'postgres' ? 'Temporal server on PostgreSQL (4 history shards)' : 'Temporal dev server (SQLite)';
const SCENARIOS = ['no-change', 'extension', 'activation', 'scale-out', 'expiry', 'held', 'reads', 'reconcile', 'entitlements', 'console', 'organization', 'many-accounts', 'facts'];

const settings = {
  /** autocannon connections for the no-change and extension scenarios and their floors (scale-out: split over its APIs). */
  connections: int('BENCH_CONNECTIONS', 10),
  /** Seconds per autocannon run (after a warm-up of a third of it). */
  durationSeconds: int('BENCH_DURATION_SECONDS', 10),
  /**
   * Tenants, each on its own IAM Identity Center instance (a moto region). The provider's quota
   * (and the worker's pacing) is per instance, so a fleet of grants is spread over several.
   */
  instances: int('BENCH_INSTANCES', 16),
  /** Distinct active grants the no-change ensures cycle through. */
  noChangePool: int('BENCH_NO_CHANGE_POOL', 50),
  /** Distinct grants the extensions cycle through (each is extended up to ~30 times). */
  extendPool: int('BENCH_EXTEND_POOL', 300),
  /** Activations (and floor activations), each for a new grant key. */
  activations: int('BENCH_ACTIVATIONS', 200),
  /** Activations in flight at once (closed loop: the next starts when one is active). */
  activationConcurrency: int('BENCH_ACTIVATION_CONCURRENCY', 8),
  /** Scale-out: activations per run (1 worker + 1 API, then 2 + 2), each for a new grant key. */
  scaleActivations: int('BENCH_SCALE_ACTIVATIONS', 200),
  /** Scale-out: activations in flight at once (closed loop). */
  scaleConcurrency: int('BENCH_SCALE_CONCURRENCY', 16),
  /** Grants made to expire in the same second. */
  expiring: int('BENCH_EXPIRING', 1000),
  /** Grants created together per wave while setting up the expiry (all aimed at one second). */
  expiryWave: int('BENCH_EXPIRY_WAVE', 40),
  /** Runs of the expiry scenario (each: the grants, then its floors); the report gives the median ratio and the spread. */
  expiryRuns: int('BENCH_EXPIRY_RUNS', 3),
  /** Active grants held at once for the memory scenario (counting those already active). */
  held: int('BENCH_HELD', 10000),
  /** Ensure calls per second while creating the held grants. */
  createRate: int('BENCH_CREATE_RATE', 40),
  /** Reads: one tenant's closed grant runs (requests withdrawn), active grants and pending requests, made through the API. */
  readsClosed: int('BENCH_READS_CLOSED', 100_000),
  readsActive: int('BENCH_READS_ACTIVE', 10_000),
  readsPending: int('BENCH_READS_PENDING', 2_000),
  /** Reads: requests in flight while the runs are made, and calls timed per read row. */
  readsConcurrency: int('BENCH_READS_CONCURRENCY', 64),
  readsSamples: int('BENCH_READS_SAMPLES', 200),
  /** Reconciliation: grant runs made before each measured round (cumulative), listed accounts, the instance's permission sets, and users. */
  reconcileRuns: ints('BENCH_RECONCILE_RUNS', [1000, 10_000, 50_000]),
  reconcileAccounts: int('BENCH_RECONCILE_ACCOUNTS', 3000),
  reconcilePermissionSets: int('BENCH_RECONCILE_PERMISSION_SETS', 25),
  reconcileUsers: int('BENCH_RECONCILE_USERS', 50),
  /** Entitlements (what may I ask for): listed accounts, the instance's permission sets, and first pages timed per row. */
  entitlementsAccounts: int('BENCH_ENTITLEMENTS_ACCOUNTS', 3000),
  entitlementsPermissionSets: int('BENCH_ENTITLEMENTS_PERMISSION_SETS', 25),
  entitlementsSamples: int('BENCH_ENTITLEMENTS_SAMPLES', 100),
  /** Many accounts: entitlements in the one ensure (accounts × 1 role), and as many assignments made by the floor. */
  manyAccounts: int('BENCH_MANY_ACCOUNTS', 200),
  /** First loads of each console page measured (each in a new browser context: nothing cached). */
  consoleSamples: int('BENCH_CONSOLE_SAMPLES', 40),
  /** The organisation refresh: accounts in the tenant's organisation, and its OUs (two levels). */
  organizationAccounts: int('BENCH_ORG_ACCOUNTS', 10_000),
  organizationOus: int('BENCH_ORG_OUS', 40),
  /** Results go to bench/results/<out>.{md,json}. */
  out: process.env.BENCH_OUT || 'results',
  /** Which scenarios to run (comma-separated); default all. */
  scenarios: process.env.BENCH_SCENARIOS ? process.env.BENCH_SCENARIOS.split(',').map((s) => s.trim()) : SCENARIOS,
};

const REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'eu-west-1', 'eu-west-2', 'eu-west-3', 'eu-central-1',
  'eu-north-1', 'ap-south-1', 'ap-northeast-1', 'ap-northeast-2', 'ap-southeast-1', 'ap-southeast-2', 'ca-central-1', 'sa-east-1'];
const ROLE = 'ReadOnlyAccess'; // auto-activated by the shipped policies
const USER = { sub: 'bench-user', email: 'bench@example.com', groups: [] as string[] };
/** The reads scenario's tenant, on an instance of its own (REGIONS holds the others'). */
const READS_TENANT = { id: 'b0000000-0000-4000-8000-00000000ead5', region: 'eu-south-1' };
/** The reconciliation scenario's tenant, on an instance of its own whose calls are counted at a proxy. */
const RECONCILE_TENANT = { id: 'b0000000-0000-4000-8000-0000000ec0c1', region: 'ap-northeast-3' };
/** The entitlements scenario's tenant (issue 37 §3): an organisation's accounts and permission sets, on an instance of its own. */
const CATALOGUE_TENANT = { id: 'b0000000-0000-4000-8000-0000000ca7a1', region: 'me-south-1' };
const CATALOGUE_ENVIRONMENTS = ['production', 'staging', 'development'];
/** The organisation scenario's tenant (issue 39): its accounts in AWS Organizations, on an instance of its own at the default quota. */
const ORGANIZATION_TENANT = { id: 'b0000000-0000-4000-8000-0000000a0a90', region: 'ap-east-1' };
/** The console scenario's tenant (issue 38): signed in through a local provider, on the stack's own instance for it. */
const CONSOLE_TENANT = { id: 'b0000000-0000-4000-8000-00000000c0e5' };
/**
 * The facts scenario's tenant (issue 40): asks a PagerDuty and a Jira (the tests' fakes, on
 * loopback) before every decision, with their answers cached as configured by default.
 */
const FACTS_TENANT = { id: 'b0000000-0000-4000-8000-00000000fac7' };
const FACTS_TICKET = 'PAY-1';
/** Grants the console scenario's person holds while their pages load. */
const CONSOLE_GRANTS = 10;
/** Asks for AdministratorAccess (reviewed by platform-admins in the shipped policies): the same identity-store user as USER. */
const REQUESTER = { ...USER, groups: ['engineering'] };
const REVIEWER = { sub: 'bench-reviewer', email: 'reviewer@example.com', groups: ['platform-admins'] };
/** One principal per tenant drives every scenario: far above the per-principal limits' defaults. */
const BENCH_GRANTS = { max_duration_seconds: 43200, max_open_per_principal: 1_000_000, ensure_rate_per_minute: 10_000_000, ensure_burst: 1_000_000, read_rate_per_minute: 10_000_000, read_burst: 1_000_000 };
const GiB = 1024 ** 3;

interface TenantSetup {
  id: string;
  region: string;
  instanceArn: string;
  identityStoreId: string;
  userId: string;
  permissionSetArn: string;
  token: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (...args: unknown[]): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...args);

/** p50, p99 and max of lags in seconds, to the hundredth. */
function secondsSummary(lags: number[]): { p50: number; p99: number; max: number } {
  return { p50: round(percentile(lags, 50), 2), p99: round(percentile(lags, 99), 2), max: round(Math.max(...lags), 2) };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const summary = (values: number[]) => ({
  n: values.length,
  p50: percentile(values, 50),
  p99: percentile(values, 99),
  max: values.length ? Math.max(...values) : NaN,
});
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A 12-digit account id, unique per scenario (`prefix`) and index. */
const account = (prefix: number, i: number): string => `${prefix}${String(i).padStart(11, '0')}`;

// ---------------------------------------------------------------------------------------------
// Processes.

const procs: Child[] = [];

function startNode(name: string, script: string, args: string[], env: NodeJS.ProcessEnv, dir: string): Child {
  // BENCH_PROFILE=1: CPU profiles of every process, written to <work dir>/profiles when it ends.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'profiles')}`] : [];
  const worker = script === 'src/worker.js';
  const flags = [...profile, ...(worker ? WORKER_NODE_FLAGS : [])];
  const child = startChild(name, process.execPath, [...flags, path.join(repoRoot, 'dist', script), ...args], { ...process.env, ...(worker ? WORKER_ENV : {}), ...env }, dir);
  procs.push(child);
  return child;
}

const stopProcs = (): Promise<unknown> => Promise.all(procs.splice(0).map((child) => stopChild(child)));

/** Where a process's memory is, as its own /metrics (prom-client's Node.js defaults) says. */
async function heapOf(metricsUrl: string): Promise<{ used: number; total: number; external: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return { used: value('nodejs_heap_size_used_bytes'), total: value('nodejs_heap_size_total_bytes'), external: value('nodejs_external_memory_bytes') };
}

/** Resident and peak resident memory of a process, in bytes (Linux). */
function memoryOf(pid: number | undefined): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

// ---------------------------------------------------------------------------------------------
// The emulated AWS: one IAM Identity Center instance per region.

/** `seed` with clients of the region's IAM Identity Center instance and identity store. */
async function withInstance<T>(
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

function seedRegion(endpoint: string, region: string): Promise<Omit<TenantSetup, 'id' | 'token'>> {
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
function seedReconcileWorld(endpoint: string) {
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
function cataloguePolicies(dir: string): string {
  const folder = path.join(dir, 'catalogue-policies');
  cpSync(path.join(repoRoot, 'policies'), folder, { recursive: true });
  writeFileSync(
    path.join(folder, 'teams.cedar'),
    '@id("teams-request")\npermit (principal in Group::"engineering", action == Action::"request", resource)\nwhen { context.role like "Team*Access" };\n',
  );
  return folder;
}

/** The entitlements scenario's instance: the shipped policies' four roles and a team role each for the rest, with descriptions. */
function seedCatalogueWorld(endpoint: string) {
  return withInstance(endpoint, CATALOGUE_TENANT.region, async ({ sso, instanceArn, identityStoreId }) => {
    const named = ['ReadOnlyAccess', 'AdministratorAccess', 'PowerUserAccess', 'SecurityAudit'];
    const names = [...named, ...Array.from({ length: settings.entitlementsPermissionSets - named.length }, (_, n) => `Team${n}Access`)];
    for (const Name of names) await sso.send(new CreatePermissionSetCommand({ InstanceArn: instanceArn, Name, Description: `${Name}: what the bench offers` }));
    return { instanceArn, identityStoreId };
  });
}

/** Account ids of the bench user's assignments in one region. */
async function assignedAccounts(sso: SSOAdminClient, t: TenantSetup): Promise<Set<string>> {
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

/**
 * Where the time goes: CPU (user + system) each process of the run has used so far, in ms, by
 * name. The bench's own children, and the stack's Temporal server (its database is in the run's
 * folder, or its PostgreSQL folder), PostgreSQL (the postmaster and its backends) and moto (by its
 * port). Linux: /proc, in clock ticks of 10 ms.
 */
const runOf = { dir: '', awsPort: '', temporalData: '' };
function cpuByProcess(): Record<string, number> {
  const pids = procs.filter((c) => c.proc.pid !== undefined && !c.ended).map((c) => ({ name: c.name, pid: c.proc.pid! }));
  let postmaster: number | undefined;
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let command: string;
    try {
      command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone meanwhile
    }
    if (command.includes('start-dev') && command.includes(runOf.dir)) pids.push({ name: 'temporal', pid: Number(entry) });
    else if (runOf.temporalData && command.includes('temporal-server') && command.includes(runOf.temporalData)) pids.push({ name: 'temporal', pid: Number(entry) });
    else if (runOf.temporalData && command.includes(`postgres -D ${runOf.temporalData}/data`)) postmaster = Number(entry);
    else if (command.includes('moto_server') && command.includes(` -p ${runOf.awsPort}`)) pids.push({ name: 'moto', pid: Number(entry) });
  }
  if (postmaster !== undefined) {
    // A backend's command line is rewritten ("postgres: temporal temporal ..."): find them by parent.
    for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        const parent = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
        if (Number(entry) === postmaster || parent === postmaster) pids.push({ name: 'postgres', pid: Number(entry) });
      } catch {
        // gone meanwhile
      }
    }
  }
  const cpu: Record<string, number> = {};
  for (const { name, pid } of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      cpu[name] = (cpu[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      // ended meanwhile
    }
  }
  return cpu;
}

// ---------------------------------------------------------------------------------------------
// Load.

interface LoadResult {
  p50: number;
  p99: number;
  mean: number;
  /** Mean responses per second. */
  rps: number;
  total: number;
  errors: number;
  non2xx: number;
  /** 2xx answers that were not what the scenario expects (e.g. not `change: none`). */
  unexpected: number;
  /** CPU per request by process, in ms (measure() only). */
  cpuMsPerRequest?: Record<string, number>;
}

interface LoadSpec {
  url: string;
  /** Path, headers and body of the i-th request. */
  request: (i: number) => { path: string; headers?: Record<string, string>; body?: string };
  /** Checks a 2xx body; false counts as unexpected. */
  expect?: (body: string) => boolean;
}

async function load(spec: LoadSpec, seconds: number, counter = { i: 0 }, connections = settings.connections): Promise<LoadResult> {
  let unexpected = 0;
  const result = await autocannon({
    url: spec.url,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const r = spec.request(counter.i++);
          return { ...req, path: r.path, headers: { ...req.headers, 'content-type': 'application/json', ...r.headers }, body: r.body ?? '' };
        },
        onResponse: (status, body) => {
          if (status < 300 && spec.expect && !spec.expect(body)) unexpected++;
        },
      },
    ],
  });
  return {
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: round(result.latency.mean, 2),
    rps: round(result.requests.average),
    total: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    unexpected,
  };
}

/** Warm-up, then the measured run. The counter carries on, so the warm-up's keys are not reused where that matters. */
async function measure(spec: LoadSpec, connections = settings.connections): Promise<LoadResult> {
  const counter = { i: 0 };
  await load(spec, Math.max(2, Math.round(settings.durationSeconds / 3)), counter, connections);
  const before = cpuByProcess();
  const result = await load(spec, settings.durationSeconds, counter, connections);
  const after = cpuByProcess();
  const cpuMsPerRequest = Object.fromEntries(
    Object.entries(after)
      .map(([name, ms]) => [name, round((ms - (before[name] ?? ms)) / Math.max(1, result.total), 2)] as const)
      .filter(([, ms]) => ms > 0),
  );
  return { ...result, cpuMsPerRequest };
}

/** A scenario's results, or what stopped it: one failing scenario does not lose the others. */
async function attempt<T>(name: string, scenario: () => Promise<T>): Promise<T | { error: string } | undefined> {
  if (!settings.scenarios.includes(name)) return undefined;
  try {
    const result = await scenario();
    log(name, JSON.stringify(result));
    return result;
  } catch (err) {
    log(`${name} failed:`, err);
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

async function closedLoop(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (settings.instances < 1 || settings.instances > REGIONS.length) throw new Error(`BENCH_INSTANCES must be 1..${REGIONS.length}`);
  const unknown = settings.scenarios.filter((s) => !SCENARIOS.includes(s));
  if (unknown.length > 0) throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${SCENARIOS.join(', ')})`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'access-bench-'));
  log('settings', settings, 'work dir', dir);
  const started = Date.now();
  const tenantIds = Array.from({ length: settings.instances }, (_, i) => `b0000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  // The bench user is on call at level 1, and the ticket is theirs: every lookup finds something.
  const sources = settings.scenarios.includes('facts') ? { pagerduty: await startFakePagerDuty('bench-pd'), jira: await startFakeJira('bench@example.com', 'bench-jira') } : undefined;
  sources?.pagerduty.onCall(USER.email, [{ schedule: 'payments-primary', service: 'payments', level: 1, end: new Date(Date.now() + 24 * 3600_000) }]);
  sources?.jira.put({ key: FACTS_TICKET, status: 'in_progress', assignee: USER.email });
  process.env.BENCH_PAGERDUTY_TOKEN = 'bench-pd';
  process.env.BENCH_JIRA_TOKEN = 'bench-jira';
  const stack: Stack = await startStack({
    dir,
    tenants: [
      ...tenantIds.map((id, i) => ({ id, name: `bench${i}`, grants: BENCH_GRANTS })),
      ...(settings.scenarios.includes('reads') ? [{ id: READS_TENANT.id, name: 'reads', grants: BENCH_GRANTS }] : []),
      ...(settings.scenarios.includes('reconcile') ? [{ id: RECONCILE_TENANT.id, name: 'reconcile', grants: BENCH_GRANTS }] : []),
      ...(settings.scenarios.includes('entitlements') ? [{ id: CATALOGUE_TENANT.id, name: 'catalogue', grants: BENCH_GRANTS, policies: cataloguePolicies(dir) }] : []),
      ...(settings.scenarios.includes('organization') ? [{ id: ORGANIZATION_TENANT.id, name: 'organization', grants: BENCH_GRANTS }] : []),
      ...(sources
        ? [{
            id: FACTS_TENANT.id,
            name: 'facts',
            grants: BENCH_GRANTS,
            oncall: { source: 'pagerduty', url: sources.pagerduty.url, token_env: 'BENCH_PAGERDUTY_TOKEN' },
            tickets: { source: 'jira', url: sources.jira.url, username: 'bench@example.com', token_env: 'BENCH_JIRA_TOKEN' },
          }]
        : []),
      ...(settings.scenarios.includes('console')
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
  try {
    await run(stack, dir, tenantIds, started, sources);
  } finally {
    await stopProcs();
    await stack.stop();
    await Promise.all([sources?.pagerduty.close(), sources?.jira.close()]);
  }
}

async function run(stack: Stack, dir: string, tenantIds: string[], started: number, sources?: { pagerduty: { requests: number }; jira: { requests: number } }): Promise<void> {
  Object.assign(runOf, { dir, awsPort: new URL(stack.awsEndpoint).port, temporalData: stack.temporalDataDir ?? '' });
  // The bench tenants' and the floors' IAM Identity Center calls go through a proxy in front of
  // moto, whose log dates each DeleteAccountAssignment as it arrives (the expiry scenario).
  const awsProxy = await FaultProxy.start();
  await awsProxy.upstream(stack.awsEndpoint);
  // Each tenant on its own instance: rewrite the stack's config with one region per tenant.
  const seeded = await Promise.all(tenantIds.map((_, i) => seedRegion(stack.awsEndpoint, REGIONS[i])));
  const readsSeed = settings.scenarios.includes('reads') ? await seedRegion(stack.awsEndpoint, READS_TENANT.region) : undefined;
  const reconcileWorld = settings.scenarios.includes('reconcile') ? await seedReconcileWorld(stack.awsEndpoint) : undefined;
  const catalogueWorld = settings.scenarios.includes('entitlements') ? await seedCatalogueWorld(stack.awsEndpoint) : undefined;
  const organizationSeed = settings.scenarios.includes('organization') ? await seedRegion(stack.awsEndpoint, ORGANIZATION_TENANT.region) : undefined;
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
    if (t.id !== READS_TENANT.id) t.aws.endpoint = awsProxy.url;
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
  let apiProc = startNode('api', 'src/api/server.js', [], { ...env, PORT: String(apiPort) }, dir);
  const floorAws: FloorAws = { endpoint: awsProxy.url, regions: tenants.map(({ region, instanceArn, userId, permissionSetArn }) => ({ region, instanceArn, userId, permissionSetArn })) };
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
  const headersOf = (t: TenantSetup) => ({ authorization: `Bearer ${t.token}`, 'x-tenant-id': t.id });
  async function ensure(i: number, acct: string, duration: number, base = api): Promise<GrantView> {
    const t = tenantOf(i);
    const res = await fetch(`${base}/v1/access/ensure`, { method: 'POST', headers: { 'content-type': 'application/json', ...headersOf(t) }, body: ensureBody(acct, duration) });
    const body = (await res.json()) as { grants: GrantView[] };
    if (!res.ok) throw new Error(`ensure ${acct}: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body.grants[0];
  }
  /** Ensures until the grant is active, as a client polls (CONTRACT: ensure again to poll). */
  async function untilActive(i: number, acct: string, duration: number, pollMs = 250, base = api): Promise<GrantView> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const view = await ensure(i, acct, duration, base);
      if (view.status === 'active') return view;
      if (view.status !== 'provisioning' || Date.now() > deadline) throw new Error(`grant on ${acct} is ${view.status}: ${JSON.stringify(view.diagnostics)}`);
      await sleep(pollMs);
    }
  }
  const changeIs = (change: string) => (body: string) => (JSON.parse(body) as { grants: GrantView[] }).grants[0]?.change === change;

  // Warm-up: a few activations through everything, and one floor activation per region.
  await closedLoop(20, 4, async (i) => void (await untilActive(i, account(6, i), 3600)));
  await closedLoop(tenants.length, 4, async (i) => void (await fetch(`${floor}/floor/activate/${i}/${account(8, i)}`, { method: 'POST' })));
  const results: Record<string, unknown> = {};

  // --- The console: a person's first load of a page, as a browser does it. ---------------------
  results.organization = await attempt('organization', async () => {
    log('organization: waiting for the first read, then a refresh');
    const reads = await organizationScenario(temporal, ORGANIZATION_TENANT.id, callsPerSecond);
    const tagReads = loadConfig(configPath).tenants.find((t) => t.id === ORGANIZATION_TENANT.id)!.organization!.tag_reads_per_refresh;
    const floor = await refreshFloor(stack.awsEndpoint, organizationWorld!.topOus, tagReads, callsPerSecond);
    return { ...reads, refreshFloor: floor, callsPerSecond };
  });

  results.console = await attempt('console', async () => {
    const id = CONSOLE_TENANT.id;
    const consoleUrl = `${api}/t/${id}/`;
    const token = await stack.issueToken(id, USER, { expiresIn: '4h' });
    const headers = { authorization: `Bearer ${token}`, 'x-tenant-id': id };
    // What My access shows: grants held (the reconciliation round names the permission sets the Request page lists).
    const schedule = temporal.schedule.getHandle(reconcileScheduleId(id));
    await waitFor("the console tenant's Schedule", async () => Boolean(await schedule.describe().catch(() => undefined)), 60_000);
    await schedule.trigger();
    for (let n = 0; n < CONSOLE_GRANTS; n++) {
      const res = await fetch(`${api}/v1/access/ensure`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: ensureBody(account(9, n), 7200) });
      if (!res.ok) throw new Error(`console grants: HTTP ${res.status} ${await res.text()}`);
    }
    await waitFor('the catalogue', async () => {
      const res = await fetch(`${api}/v1/access/entitlements?limit=1`, { headers });
      return res.ok && ((await res.json()) as { entitlements: unknown[] }).entitlements.length > 0;
    }, 120_000);

    const browser = await launchChromium();
    try {
      const { context } = await signedIn(browser, consoleUrl, USER.sub);
      const cookies = await context.cookies();
      await context.close();
      const pages = { access: 'My access', request: 'Request access' } as const;
      const loads: Record<keyof typeof pages, { html: number[]; load: number[] }> = { access: { html: [], load: [] }, request: { html: [], load: [] } };
      let scriptBytes = 0;
      let stylesheetBytes = 0;
      for (let n = 0; n < settings.consoleSamples; n++) {
        for (const name of Object.keys(pages) as (keyof typeof pages)[]) {
          // A new context each time: no cache, the session cookie only.
          const fresh = await browser.newContext();
          await fresh.addCookies(cookies);
          const page = await fresh.newPage();
          await page.goto(`${consoleUrl}${name}`, { waitUntil: 'load' });
          if (!(await page.locator('h1').innerText()).includes(pages[name])) throw new Error(`console ${name}: not the page (${page.url()})`);
          const timing = await page.evaluate(() => {
            const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
            const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
            const bytes = (type: string) => resources.filter((r) => r.initiatorType === type).reduce((sum, r) => sum + r.encodedBodySize, 0);
            return { html: nav.responseEnd - nav.startTime, load: nav.loadEventEnd - nav.startTime, script: bytes('script'), css: bytes('link') };
          });
          loads[name].html.push(timing.html);
          loads[name].load.push(timing.load);
          scriptBytes = Math.max(scriptBytes, timing.script);
          stylesheetBytes = Math.max(stylesheetBytes, timing.css);
          await fresh.close();
        }
      }
      // The floor: the API calls each page makes, from the same process's address, with the person's token.
      const floors: Record<keyof typeof pages, number[]> = { access: [], request: [] };
      for (let n = 0; n < settings.consoleSamples; n++) {
        let started = performance.now();
        await Promise.all([
          ...['active', 'provisioning', 'pending'].map((status) => fetch(`${api}/v1/access/grants?status=${status}&limit=100`, { headers }).then((r) => r.text())),
          fetch(`${api}/v1/access/grants?limit=50`, { headers }).then((r) => r.text()),
        ]);
        floors.access.push(performance.now() - started);
        started = performance.now();
        await fetch(`${api}/v1/access/entitlements`, { headers }).then((r) => r.text());
        floors.request.push(performance.now() - started);
      }
      const ms = (values: number[]) => ({ p50: round(percentile(values, 50), 1), p99: round(percentile(values, 99), 1) });
      return {
        samples: settings.consoleSamples,
        grants: CONSOLE_GRANTS,
        scriptKB: round(scriptBytes / 1024, 1),
        stylesheetKB: round(stylesheetBytes / 1024, 1),
        access: { htmlMs: ms(loads.access.html), loadMs: ms(loads.access.load), floorMs: ms(floors.access) },
        request: { htmlMs: ms(loads.request.html), loadMs: ms(loads.request.load), floorMs: ms(floors.request) },
      };
    } finally {
      await browser.close();
    }
  });

  // --- Many accounts: one ensure for an organisation's accounts (issue 39 §2). -----------------
  results.manyAccounts = await attempt('many-accounts', async () => {
    const t = tenants[0];
    const sso = ssoOf[0];
    const n = settings.manyAccounts;
    const { calls_per_second: perSecond, assignment_operations_in_flight: inFlight } = loadConfig(configPath).tenants.find((c) => c.id === t.id)!.aws.limits;
    // 12 digits of their own (every one-digit prefix of account() is some scenario's).
    const accounts = Array.from({ length: n }, (_, i) => String(880_000_000_000 + i));
    const ensureOf = (token: string, role: string, on: string[]) =>
      fetch(`${api}/v1/access/ensure`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-tenant-id': t.id },
        body: JSON.stringify({ entitlements: on.map((a) => ({ target: `AWS::Account::${a}`, role, duration_seconds: 3600 })), justification: { reason: 'bench' } }),
      });
    // First what starting the grants alone costs: as many reviewed grants (one access request, nothing provisioned).
    const requestedStarted = performance.now();
    const requested = await ensureOf(await stack.issueToken(t.id, REQUESTER, { expiresIn: '4h' }), 'AdministratorAccess', accounts.map((_, i) => String(882_000_000_000 + i)));
    const requestedMs = performance.now() - requestedStarted;
    const requestedBody = (await requested.json()) as { grants: GrantView[] };
    if (!requested.ok || requestedBody.grants.some((g) => g.change !== 'requested')) throw new Error(`many accounts, requested: HTTP ${requested.status} ${JSON.stringify(requestedBody).slice(0, 500)}`);
    const started = performance.now();
    const res = await ensureOf(t.token, ROLE, accounts);
    const body = (await res.json()) as { grants: GrantView[] };
    const answerMs = performance.now() - started;
    if (!res.ok || body.grants.length !== n) throw new Error(`many accounts: HTTP ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
    const activated = body.grants.filter((g) => g.change === 'activated').length;
    // Every assignment, as AWS lists them (listed straight from moto, not through the tenant's pacer).
    let everyMs = 0;
    for (;;) {
      const held = await assignedAccounts(sso, t);
      if (accounts.every((a) => held.has(a))) {
        everyMs = performance.now() - started;
        break;
      }
      if (performance.now() - started > 15 * 60_000) throw new Error(`many accounts: ${accounts.filter((a) => !held.has(a)).length} assignments still missing after 15 min`);
      await sleep(250);
    }

    // The floor: the same assignments' calls alone (CreateAccountAssignment, then its status until
    // it succeeded), at the tenant's pace and operations in flight, with the worker's own pacer.
    const pace = pacer(perSecond);
    const operation = semaphore(inFlight);
    let floorCalls = 0;
    const call = async <T>(send: () => Promise<T>) => (await pace(), floorCalls++, send());
    const floorStarted = performance.now();
    await Promise.all(
      accounts.map((_, i) =>
        operation(async () => {
          const created = await call(() =>
            sso.send(new CreateAccountAssignmentCommand({ InstanceArn: t.instanceArn, TargetId: String(881_000_000_000 + i), TargetType: 'AWS_ACCOUNT', PermissionSetArn: t.permissionSetArn, PrincipalType: 'USER', PrincipalId: t.userId })),
          );
          for (let status = created.AccountAssignmentCreationStatus; status?.Status !== 'SUCCEEDED'; ) {
            if (status?.Status === 'FAILED') throw new Error(`floor assignment failed: ${status.FailureReason}`);
            status = (await call(() => sso.send(new DescribeAccountAssignmentCreationStatusCommand({ InstanceArn: t.instanceArn, AccountAssignmentCreationRequestId: created.AccountAssignmentCreationStatus?.RequestId })))).AccountAssignmentCreationStatus;
          }
        }),
      ),
    );
    const floorMs = performance.now() - floorStarted;
    return { accounts: n, activated, answerMs: round(answerMs), requestedAnswerMs: round(requestedMs), everyAssignmentSeconds: round(everyMs / 1000, 1), floorSeconds: round(floorMs / 1000, 1), floorCalls, callsPerSecond: perSecond, operationsInFlight: inFlight };
  });

  // --- Entitlements: what may I ask for, at an organisation's size. ---------------------------
  results.entitlements = await attempt('entitlements', async () => {
    const id = CATALOGUE_TENANT.id;
    // The worker made the tenant's reconciliation Schedule at start-up: one round reads the permission sets.
    const schedule = temporal.schedule.getHandle(reconcileScheduleId(id));
    await waitFor('the catalogue tenant\'s Schedule', async () => Boolean(await schedule.describe().catch(() => undefined)), 60_000);
    await schedule.trigger();
    await waitFor('its reconciliation round', async () => {
      const run = (await schedule.describe()).info.recentActions.at(-1)?.action.workflow;
      return Boolean(run && (await temporal.workflow.getHandle(run.workflowId, run.firstExecutionRunId).describe()).status.name === 'COMPLETED');
    }, 120_000);
    const page = async (token: string, query: string) => {
      const started = performance.now();
      const res = await fetch(`${api}/v1/access/entitlements${query}`, { headers: { authorization: `Bearer ${token}`, 'x-tenant-id': id } });
      const body = (await res.json()) as { entitlements: { role: string; account: { id: string } }[]; next_cursor: string | null };
      if (!res.ok) throw new Error(`entitlements: HTTP ${res.status} ${JSON.stringify(body)}`);
      return { ms: performance.now() - started, body };
    };
    const requester = (n: number) => stack.issueToken(id, { sub: `bench-asker-${n}`, email: `bench-asker-${n}@example.com`, groups: ['engineering'] }, { expiresIn: '4h' });
    // The API reads the round's report (again within seconds when it had found none).
    const first = await requester(-1);
    await waitFor('the API to know the permission sets', async () => (await page(first, '?limit=1')).body.entitlements.length > 0, 60_000);

    // The floor: one Cedar decision, as the API makes it (the same policy folder), each a new request (no memo).
    const policies = loadPolicySet(cataloguePolicies(dir));
    const decisionMs: number[] = [];
    for (let n = 0; n < 2000; n++) {
      const started = performance.now();
      policies.authorize({
        principal: { id: `floor-${n}`, email: 'floor@example.com', groups: ['engineering'] },
        action: n % 2 ? 'activate' : 'request',
        accountId: account(7, n % settings.entitlementsAccounts),
        accountEnvironment: CATALOGUE_ENVIRONMENTS[n % 3],
        context: { role: `Team${n % 20}Access`, duration_seconds: 3600, has_reason: true, has_ticket_attachment: true },
      });
      decisionMs.push(performance.now() - started);
    }
    const ms = (values: number[], digits = 1) => {
      const { n, p50, p99, max } = summary(values);
      return { n, p50: round(p50, digits), p99: round(p99, digits), max: round(max, digits) };
    };
    const decision = ms(decisionMs.slice(200), 3);

    // A new principal each sample: nothing of theirs decided yet (their token checked once before, as a client's would be).
    const cold: number[] = [];
    const warm: number[] = [];
    let listed = 0;
    for (let n = 0; n < settings.entitlementsSamples; n++) {
      const token = await requester(n);
      await page(token, '?role=NoSuchRole');
      const a = await page(token, '?limit=100');
      const b = await page(token, '?limit=100');
      cold.push(a.ms);
      warm.push(b.ms);
      listed = a.body.entitlements.length;
      if (JSON.stringify(a.body) !== JSON.stringify(b.body)) throw new Error('the same principal got two different first pages');
    }
    // Every pair once, a page of 100 at a time (one principal, one pass).
    const passToken = await requester(-2);
    const seen = new Set<string>();
    let pages = 0;
    const passStarted = performance.now();
    for (let cursor: string | null = null; ; ) {
      const { body } = await page(passToken, `?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      pages++;
      for (const e of body.entitlements) seen.add(`${e.account.id} ${e.role}`);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    const passMs = performance.now() - passStarted;
    return {
      accounts: settings.entitlementsAccounts,
      permissionSets: settings.entitlementsPermissionSets,
      pairs: settings.entitlementsAccounts * settings.entitlementsPermissionSets,
      firstPageSize: listed,
      coldFirstPageMs: ms(cold),
      warmFirstPageMs: ms(warm),
      decisionMs: decision,
      floorMs: { p50: round(decision.p50 * 100, 1), p99: round(decision.p99 * 100, 1) },
      everyDecidedMs: round((decision.p50 * settings.entitlementsAccounts * settings.entitlementsPermissionSets) / 1000, 1),
      allPages: { pages, listed: seen.size, seconds: round(passMs / 1000, 1) },
    };
  });

  // --- No change: an active grant asked for again. -------------------------------------------
  log(`no-change: creating ${settings.noChangePool} grants`);
  // Created for 2 hours and asked for 1: never extended during the run.
  await closedLoop(settings.noChangePool, settings.activationConcurrency, async (i) => void (await untilActive(i, account(1, i), 7200)));
  const sample = await temporal.workflow
    .getHandle(grantWorkflowId({ tenantId: tenants[0].id, principalId: USER.sub, target: `AWS::Account::${account(1, 0)}`, role: ROLE }))
    .query(grantStateQuery);
  const floorPool = Math.max(settings.noChangePool, settings.extendPool);
  for (let i = 0; i < floorPool; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, floorPool - i) }, (_, j) =>
        temporal.workflow.start('floorWorkflow', { taskQueue: FLOOR_TASK_QUEUE, workflowId: `floor-hold/${i + j}`, args: [{ state: sample, hold: true }] }),
      ),
    );
  }
  const noChangeSpec: LoadSpec = {
    url: api,
    request: (i) => ({ path: '/v1/access/ensure', headers: headersOf(tenantOf(i % settings.noChangePool)), body: ensureBody(account(1, i % settings.noChangePool), 3600) }),
    expect: changeIs('none'),
  };
  const queryFloorSpec: LoadSpec = { url: floor, request: (i) => ({ path: `/floor/query/floor-hold%2F${i % settings.noChangePool}` }) };
  results.noChange = await attempt('no-change', async () => {
    log('no-change: floor');
    const floorResult = await measure(queryFloorSpec);
    log('no-change: ensure');
    return { ensure: await measure(noChangeSpec), floor: floorResult };
  });

  // --- Facts: the same no-change ensure, by a tenant that asks PagerDuty and Jira (cached). ---
  results.facts = await attempt('facts', async () => {
    const factsTenant = { id: FACTS_TENANT.id, token: await stack.issueToken(FACTS_TENANT.id, USER, { expiresIn: '4h' }) };
    const plainTenant = tenants[0];
    const body = (acct: string, duration: number) =>
      JSON.stringify({ entitlements: [{ target: `AWS::Account::${acct}`, role: ROLE, duration_seconds: duration }], justification: { reason: 'bench', attachments: [FACTS_TICKET] } });
    const ensureIn = async (t: { id: string; token: string }, acct: string, duration: number): Promise<GrantView> => {
      const res = await fetch(`${api}/v1/access/ensure`, { method: 'POST', headers: { 'content-type': 'application/json', ...headersOf(t as TenantSetup) }, body: body(acct, duration) });
      const answer = (await res.json()) as { grants: GrantView[] };
      if (!res.ok) throw new Error(`ensure ${acct}: HTTP ${res.status} ${JSON.stringify(answer)}`);
      return answer.grants[0];
    };
    log(`facts: creating ${settings.noChangePool} grants in each of two tenants, one with sources`);
    // The no-change scenario's accounts (the same grants, in the plain tenant), and the same ids in the facts tenant.
    const pools = [{ t: plainTenant, series: 1 }, { t: factsTenant, series: 1 }];
    for (const { t, series } of pools) {
      await closedLoop(settings.noChangePool, settings.activationConcurrency, async (i) => {
        const deadline = Date.now() + 120_000;
        while ((await ensureIn(t, account(series, i), 7200)).status !== 'active') {
          if (Date.now() > deadline) throw new Error(`facts: grant ${series}/${i} not active`);
          await sleep(250);
        }
      });
    }
    const sample = await ensureIn(factsTenant, account(1, 0), 3600);
    if (sample.validation.oncall?.status !== 'on_call' || sample.validation.ticket?.status !== 'found') throw new Error(`facts: the sources did not answer: ${JSON.stringify(sample.validation)}`);
    const spec = (t: { id: string; token: string }, series: number): LoadSpec => ({
      url: api,
      request: (i) => ({ path: '/v1/access/ensure', headers: headersOf(t as TenantSetup), body: body(account(series, i % settings.noChangePool), 3600) }),
      expect: changeIs('none'),
    });
    const requestsBefore = sources!.pagerduty.requests + sources!.jira.requests;
    // Both loads at once, half the connections each, three times: on a shared machine, whatever
    // else runs falls on both alike (one after the other, a p99 measures the neighbours).
    const runs: { without: LoadResult; withSources: LoadResult }[] = [];
    for (let r = 0; r < 3; r++) {
      log(`facts: no-change ensure with and without sources, at once (${r + 1} of 3)`);
      const half = Math.max(1, Math.round(settings.connections / 2));
      const [without, withSources] = await Promise.all([measure(spec(plainTenant, 1), half), measure(spec(factsTenant, 1), half)]);
      runs.push({ without, withSources });
    }
    const ratios = runs.map((r) => r.withSources.p99 / r.without.p99);
    const median = [...ratios].sort((a, b) => a - b)[1];
    const { without, withSources } = runs[ratios.indexOf(median)];
    return { without, withSources, p99Ratios: ratios.map((x) => round(x, 2)), sourceRequests: sources!.pagerduty.requests + sources!.jira.requests - requestsBefore };
  });

  // --- Extension: each request extends an active grant. ---------------------------------------
  const EXTEND_BASE = 600;
  results.extension = await attempt('extension', async () => {
    log(`extension: creating ${settings.extendPool} grants`);
    await closedLoop(settings.extendPool, settings.activationConcurrency, async (i) => void (await untilActive(i, account(2, i), EXTEND_BASE)));
    // The k-th extension of a grant asks for 1.15^k times the base: always past the extension slack
    // (10% of the duration, at most 5 minutes), so every call really extends.
    const extendSpec: LoadSpec = {
      url: api,
      request: (i) => {
        const g = i % settings.extendPool;
        const k = Math.floor(i / settings.extendPool) + 1;
        return { path: '/v1/access/ensure', headers: headersOf(tenantOf(g)), body: ensureBody(account(2, g), Math.min(43200, Math.ceil(EXTEND_BASE * 1.15 ** k))) };
      },
      expect: changeIs('extended'),
    };
    const floorSpec = (route: string): LoadSpec => ({ url: floor, request: (i) => ({ path: `/floor/${route}/floor-hold%2F${i % settings.extendPool}` }) });
    log('extension: floors (one empty update; one update and one audit write)');
    const emptyUpdateFloor = await measure(floorSpec('update'));
    const updateAuditFloor = await measure(floorSpec('update-audit'));
    log('extension: ensure');
    return { ensure: await measure(extendSpec), floor: updateAuditFloor, emptyUpdateFloor };
  });

  // --- Activation: a new grant key each time, until its assignment exists. --------------------
  const toActive: number[] = [];
  results.activation = await attempt('activation', async () => {
    log(`activation: ${settings.activations} floor activations, then ${settings.activations} ensures`);
    const floorActivation: number[] = [];
    await closedLoop(settings.activations, settings.activationConcurrency, async (i) => {
      const t0 = performance.now();
      const res = await fetch(`${floor}/floor/activate/${i % tenants.length}/${account(7, i)}`, { method: 'POST' });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`floor activation: HTTP ${res.status}`);
      floorActivation.push(performance.now() - t0);
    });
    const ensureMs: number[] = [];
    await closedLoop(settings.activations, settings.activationConcurrency, async (i) => {
      const t0 = Date.now();
      const first = await ensure(i, account(3, i), 3600);
      ensureMs.push(Date.now() - t0);
      if (first.change !== 'activated') throw new Error(`activation answered ${first.change}`);
      // Polling (every ensure is a query) loads the machine the grant is provisioned on; activated_at,
      // not the poll, dates the activation, so a 250 ms poll costs the measurement nothing.
      const active = await untilActive(i, account(3, i), 3600, 250);
      toActive.push(Date.parse(active.activated_at!) - t0);
    });
    return {
      concurrency: settings.activationConcurrency,
      ensureResponseMs: summary(ensureMs),
      timeToActiveMs: summary(toActive),
      floorMs: summary(floorActivation),
    };
  });

  // --- Scale-out: the same loads on 1 worker + 1 API, then on 2 + 2. ---------------------------
  results.scaleOut = await attempt('scale-out', scaleOutScenario);

  // --- Expiry: many grants expiring in the same second. ---------------------------------------
  results.expiry = await attempt('expiry', expiryScenario);

  // --- Held: many active grants at once; memory and the no-change latency meanwhile. ----------
  results.held = await attempt('held', heldScenario);

  // --- Reads: a tenant's listings at an enterprise's size, against bare visibility calls. -----
  results.reads = await attempt('reads', readsScenario);

  // --- Reconciliation: a round's AWS calls and time as the tenant's grant runs grow. ----------
  results.reconcile = await attempt('reconcile', reconcileScenario);
  await reconcileWorld?.proxy.close();
  await awsProxy.close();

  writeAll();

  function writeAll(): void {
    results.settings = { ...settings, callsPerSecond };
    results.machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavgAtEnd: os.loadavg().map((n) => round(n, 2)) };
    results.totalMinutes = round((Date.now() - started) / 60_000);
    writeResults(results);
  }

  /**
   * The expiry floor: what Temporal alone takes to fire N timers due in the same second and close
   * their workflows (bare workflows on the floor's worker), from the due time to each close.
   */
  async function timerFloor(n: number) {
    const prefix = `floor-timer/${Date.now()}`;
    const startedAt = Date.now();
    const since = new Date(startedAt - 1000).toISOString();
    const dueMs = Date.now() + 20_000;
    await closedLoop(n, 20, async (i) => {
      await temporal.workflow.start('floorTimerWorkflow', { taskQueue: FLOOR_TASK_QUEUE, workflowId: `${prefix}/${i}`, args: [dueMs] });
    });
    if (Date.now() > dueMs - 2000) throw new Error(`starting ${n} timer workflows took ${Date.now() - startedAt} ms: too late for their timers`);
    const query = `WorkflowType = 'floorTimerWorkflow' AND StartTime >= '${since}'`;
    const deadline = dueMs + 10 * 60_000;
    await sleep(dueMs - Date.now());
    while ((await temporal.workflow.count(`${query} AND ExecutionStatus = 'Completed'`)).count < n && Date.now() < deadline) await sleep(1000);
    const lags: number[] = [];
    for await (const run of temporal.workflow.list({ query })) if (run.closeTime) lags.push((run.closeTime.getTime() - dueMs) / 1000);
    return { workflows: n, closed: lags.length, lagSeconds: secondsSummary(lags) };
  }

  /**
   * No-change throughput (autocannon on the no-change pool) and activation throughput (a closed
   * loop of new grants, each until active) with the worker and API already running, then with a
   * second worker and a second API beside them, against the same Temporal dev server.
   */
  async function scaleOutScenario() {
    const k = settings.scaleActivations;
    /** Activations completed per second, calls spread over `bases`; accounts `from`.. are new. */
    const activationRate = async (bases: string[], from: number) => {
      const t0 = performance.now();
      await closedLoop(k, settings.scaleConcurrency, async (i) => void (await untilActive(i, account(0, from + i), 3600, 250, bases[i % bases.length])));
      return round(k / ((performance.now() - t0) / 1000), 2);
    };
    log('scale-out: 1 worker + 1 API');
    const baseline = { noChange: await measure(noChangeSpec), activationsPerSecond: await activationRate([api], 0) };
    log('scale-out: baseline', JSON.stringify(baseline));

    const api2Port = await freePort();
    const api2 = `http://127.0.0.1:${api2Port}`;
    // The first worker holds the default metrics port.
    const extra = [startNode('worker-2', 'src/worker.js', [], { ...env, WORKER_METRICS_PORT: '0' }, dir), startNode('api-2', 'src/api/server.js', [], { ...env, PORT: String(api2Port) }, dir)];
    const presence = presenceQueueOf(workerEnv.taskQueue);
    const workersSeen = async () => (await pollersOf(temporal, workerEnv.temporalNamespace, presence)).size;
    try {
      await waitFor('second API', ok(`${api2}/readyz`), 60_000, extra[1]);
      await waitFor('second worker', async () => (await workersSeen()) >= 2, 120_000, extra[0]);
      // Listed by Temporal; the new worker sees itself at its next count (within a refresh), and
      // then makes no AWS call for a refresh and a margin more, until the first worker has counted
      // it too (fleet.ts). No log or metric tells when that is over: three refresh periods cover it.
      await sleep(3 * FLEET_REFRESH_MS);
      const bases = [api, api2];
      log('scale-out: 2 workers + 2 APIs');
      // autocannon sends to one host: one run per API at once, each with half the connections.
      const half = Math.max(1, Math.floor(settings.connections / 2));
      const runs = await Promise.all(bases.map((url, j) => measure({ ...noChangeSpec, url }, j === 0 ? settings.connections - half : half)));
      const scaled = { noChangeRps: round(runs[0].rps + runs[1].rps), noChangeRuns: runs, activationsPerSecond: await activationRate(bases, k) };
      return {
        baseline,
        scaled,
        noChangeRatio: round(scaled.noChangeRps / baseline.noChange.rps, 2),
        activationRatio: round(scaled.activationsPerSecond / baseline.activationsPerSecond, 2),
      };
    } finally {
      for (const child of extra) procs.splice(procs.indexOf(child), 1);
      await Promise.all(extra.map((child) => stopChild(child)));
      // The first worker counts a stopped one until Temporal's record of its last poll is old
      // (fleet.ts, up to 2.5 min), and takes half the quota meanwhile: wait, so the scenarios
      // after (if any run) see 1 + 1.
      if (settings.scenarios.some((name) => SCENARIOS.indexOf(name) > SCENARIOS.indexOf('scale-out'))) {
        log('scale-out: extra processes stopped; waiting until the worker counts only itself');
        await waitFor('the worker count back to 1', async () => (await workersSeen()) <= 1, 300_000)
          .then(() => sleep(FLEET_REFRESH_MS))
          .catch((err) => log('scale-out:', err instanceof Error ? err.message : err));
      }
    }
  }

  /**
   * Each DeleteAccountAssignment of one of `accounts` as it arrived at the bench tenants' proxy
   * (epoch ms; the first per account: a retry is not a later end), read from the proxy's log once a
   * second until every account has one or `deadline` passes. Nothing is asked of moto meanwhile.
   */
  async function deletionsOf(accounts: Set<string>, deadline: number): Promise<Map<string, number>> {
    const seen = new Map<string, number>();
    for (;;) {
      for (const call of (await awsProxy.stats()).assignmentCalls) {
        if (call.op === 'DeleteAccountAssignment' && accounts.has(call.account) && !seen.has(call.account)) seen.set(call.account, call.epochMs);
      }
      if (seen.size >= accounts.size || Date.now() > deadline) return seen;
      await sleep(1000);
    }
  }

  /**
   * The fair expiry floor: the least a Temporal workflow can do to end access. One workflow per
   * offset, due at a common instant plus it (the grants' spread), sleeps until then and makes one
   * DeleteAccountAssignment in a local activity (so in the timer's own workflow task) through the
   * same proxy as the grants, on accounts of its own; from the due time to the call's arrival.
   */
  async function endAccessFloor(offsetsMs: number[], run: number) {
    const n = offsetsMs.length;
    const accounts = offsetsMs.map((_, i) => String(870_000_000_000 + run * settings.expiring + i));
    // The assignments it removes, made beforehand straight in moto (not measured).
    await closedLoop(n, 16, async (i) => {
      const t = tenantOf(i);
      await ssoOf[i % tenants.length].send(
        new CreateAccountAssignmentCommand({ InstanceArn: t.instanceArn, TargetId: accounts[i], TargetType: 'AWS_ACCOUNT', PermissionSetArn: t.permissionSetArn, PrincipalType: 'USER', PrincipalId: t.userId }),
      );
    });
    await awsProxy.reset();
    const startedAt = Date.now();
    const dueMs = startedAt + 20_000;
    await closedLoop(n, 20, async (i) => {
      await temporal.workflow.start('floorEndAccessWorkflow', {
        taskQueue: FLOOR_TASK_QUEUE,
        workflowId: `floor-end-access/${startedAt}/${i}`,
        args: [{ dueMs: dueMs + offsetsMs[i], region: i % tenants.length, account: accounts[i] }],
      });
    });
    if (Date.now() > dueMs - 2000) throw new Error(`starting ${n} end-access workflows took ${Date.now() - startedAt} ms: too late for their timers`);
    await sleep(dueMs - Date.now());
    const deleted = await deletionsOf(new Set(accounts), dueMs + Math.max(...offsetsMs) + 10 * 60_000);
    const lags = accounts.flatMap((a, i) => (deleted.has(a) ? [(deleted.get(a)! - dueMs - offsetsMs[i]) / 1000] : []));
    return { workflows: n, ended: deleted.size, lagSeconds: secondsSummary(lags) };
  }

  /**
   * Expiry, BENCH_EXPIRY_RUNS times: grants made to expire in the same second, then the floors
   * (timers ending access, spread as the grants' expires_at were; and bare timers due together).
   */
  async function expiryScenario() {
    const n = settings.expiring;
    const wave = Math.max(1, settings.expiryWave);
    // Calibration: one wave of long grants (not measured) shows how long a wave takes here and now.
    const calibrationStart = Date.now();
    const calibration: number[] = [];
    await Promise.all(
      Array.from({ length: Math.min(wave, n) }, async (_, j) => {
        const t0 = Date.now();
        const view = await untilActive(j, account(9, j), 7200, 250);
        calibration.push(Date.parse(view.activated_at!) - t0);
      }),
    );
    const waveSeconds = (Date.now() - calibrationStart) / 1000;
    const runs = [];
    for (let run = 0; run < Math.max(1, settings.expiryRuns); run++) {
      log(`expiry: run ${run + 1} of ${settings.expiryRuns}`);
      const grants = await expiringGrants(run, waveSeconds, percentile(calibration, 50) / 1000);
      const first = Math.min(...grants.expiresAt);
      const offsets = grants.expiresAt.map((at) => at - first);
      log(`expiry: the floor, ${offsets.length} timers each ending access, spread over ${grants.expiresAtSpreadMs} ms`);
      const endAccess = await endAccessFloor(offsets, run);
      log('expiry: end-access floor', JSON.stringify(endAccess));
      log(`expiry: ${n} bare timers due in the same second`);
      const bareTimers = await timerFloor(n);
      log('expiry: bare timers', JSON.stringify(bareTimers));
      const { expiresAt: _, ...measured } = grants;
      const ratio = (floor: { p50: number; p99: number }) => ({ p50: round(grants.lagSeconds.p50 / floor.p50, 2), p99: round(grants.lagSeconds.p99 / floor.p99, 2) });
      runs.push({ ...measured, endAccessFloor: endAccess, bareTimers, ratios: { endAccess: ratio(endAccess.lagSeconds), bareTimers: ratio(bareTimers.lagSeconds) } });
    }
    return { asked: n, instances: tenants.length, runs };
  }

  /**
   * One run's grants: made in waves that all aim at one second, then each one's lag from its
   * expires_at to its DeleteAccountAssignment's arrival at the proxy; waits until they have closed.
   */
  async function expiringGrants(run: number, waveSeconds: number, calibratedDelay: number) {
    const n = settings.expiring;
    const wave = Math.max(1, settings.expiryWave);
    const waves = Math.ceil(n / wave);
    await awsProxy.reset();
    // All aim at the middle of one second T: a wave sent at s asks for round(T + 0.5 - s - delay)
    // seconds, and waves are sent when that is a whole number, so only the activation delay's
    // jitter spreads expires_at.
    const target = Math.ceil(Date.now() / 1000) + Math.ceil(waves * (1.5 * waveSeconds + 1)) + 20;
    let delay = calibratedDelay;
    const expiresAt = new Map<string, number>();
    log(`expiry: creating ${n} grants in ${waves} waves, all to expire at ${new Date(target * 1000 + 500).toISOString()}`);
    for (let w = 0; w < waves; w++) {
      const now = Date.now() / 1000;
      const phase = (((target + 0.5 - delay) % 1) + 1) % 1;
      let sendAt = Math.floor(now) + phase;
      if (sendAt < now) sendAt += 1;
      await sleep((sendAt - Date.now() / 1000) * 1000);
      const duration = Math.round(target + 0.5 - sendAt - delay);
      if (duration < 5) {
        // Slower than planned (a busy machine): measure what was made rather than give up.
        log(`expiry: out of time after ${expiresAt.size} grants`);
        break;
      }
      const delays: number[] = [];
      await Promise.all(
        Array.from({ length: Math.min(wave, n - w * wave) }, async (_, j) => {
          const i = w * wave + j;
          const acct = account(4, run * n + i);
          const t0 = Date.now();
          const view = await untilActive(i, acct, duration, 250);
          delays.push(Date.parse(view.activated_at!) - t0);
          expiresAt.set(acct, Date.parse(view.expires_at!));
        }),
      );
      delay = percentile(delays, 50) / 1000;
    }
    const expiries = [...expiresAt.values()];
    const [first, last] = [Math.min(...expiries), Math.max(...expiries)];
    log(`expiry: all active; expires_at spread over ${last - first} ms; reading the proxy's log`);
    await sleep(Math.max(0, first - Date.now()));
    const deleted = await deletionsOf(new Set(expiresAt.keys()), last + 15 * 60_000);
    const lags = [...deleted].map(([acct, at]) => (at - expiresAt.get(acct)!) / 1000);
    // The floors run on a machine the grants have left: every one of them closed (audit written).
    const open = `WorkflowType = 'grantWorkflow' AND ExecutionStatus = 'Running' AND AccessExpiresAt >= '${new Date(first).toISOString()}' AND AccessExpiresAt <= '${new Date(last).toISOString()}'`;
    await waitFor("the run's grants closed", async () => (await temporal.workflow.count(open)).count === 0, 5 * 60_000).catch((err) => log('expiry:', err instanceof Error ? err.message : err));
    return {
      grants: expiresAt.size,
      expiresAtSpreadMs: last - first,
      deleted: deleted.size,
      deletedEarly: lags.filter((l) => l < 0).length,
      lagSeconds: { ...summary(lags), ...secondsSummary(lags) },
      expiresAt: expiries,
    };
  }

  /** An API call as a user of the tenant. A busy dev server answers 503 with Retry-After now and then while a fixture is made, and its visibility may list a grant made a moment ago later than the API waits for (404): both are asked again. */
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
  /** A 12-hour ensure of `role` on `acct`: the grant's view. */
  async function ask(tenantId: string, token: string, acct: string, role: string): Promise<GrantView> {
    const reply = await apiCall<{ grants: GrantView[] }>(tenantId, token, 'POST', '/v1/access/ensure', {
      entitlements: [{ target: `AWS::Account::${acct}`, role, duration_seconds: 43200 }],
      justification: { reason: 'bench' },
    });
    return reply.grants[0];
  }
  /** A closed grant run: a reviewed request, withdrawn as an operator does, by the workflow's id (the run closes on its own meanwhile). */
  async function withdrawnRun(tenantId: string, token: string, principalId: string, acct: string): Promise<void> {
    await ask(tenantId, token, acct, 'AdministratorAccess');
    const key = { tenantId, principalId, target: `AWS::Account::${acct}`, role: 'AdministratorAccess' };
    await temporal.workflow.getHandle(grantWorkflowId(key)).signal(revokeSignal, { revokedBy: principalId, reason: 'bench: withdrawn' });
  }
  /** `task` for 0..n-1, `concurrency` at once: how long it took, in s. */
  async function made(what: string, n: number, task: (i: number) => Promise<void>, concurrency = settings.readsConcurrency): Promise<number> {
    const t0 = Date.now();
    await closedLoop(n, concurrency, async (i) => {
      await task(i);
      if (i % 5000 === 4999) log(`${i + 1} of ${n} ${what}`);
    });
    log(`${n} ${what} in ${round((Date.now() - t0) / 1000)} s`);
    return round((Date.now() - t0) / 1000);
  }

  async function readsScenario() {
    const tenantId = READS_TENANT.id;
    const [requester, reviewer] = await Promise.all([stack.issueToken(tenantId, REQUESTER, { expiresIn: '4h' }), stack.issueToken(tenantId, REVIEWER, { expiresIn: '4h' })]);
    const call = <T = any>(token: string, method: string, url: string, body?: unknown) => apiCall<T>(tenantId, token, method, url, body);
    const making = {
      closedSeconds: await made('closed runs (requests withdrawn)', settings.readsClosed, (i) => withdrawnRun(tenantId, requester, REQUESTER.sub, account(9, i))),
      activeSeconds: await made('active grants', settings.readsActive, async (i) => void (await ask(tenantId, requester, account(4, i), ROLE))),
      pendingSeconds: 0,
    };
    const pending: string[] = [];
    making.pendingSeconds = await made('pending requests', settings.readsPending, async (i) => void pending.push((await ask(tenantId, requester, account(4, i), 'AdministratorAccess')).access_request_id!));
    const visible = `WorkflowType = 'grantWorkflow' AND ExecutionStatus != 'ContinuedAsNew' AND AccessTenant = '${tenantId}'`;
    await waitFor('every withdrawn run closed, and every pending request listed', async () =>
      (await temporal.workflow.count(`${visible} AND ExecutionStatus != 'Running'`)).count >= settings.readsClosed &&
      (await temporal.workflow.count(`${visible} AND AccessAwaitingReview = true`)).count >= settings.readsPending, 30 * 60_000);
    const runs = (await temporal.workflow.count(visible)).count;
    const measure = () => measureReads(tenantId, visible, pending, call);
    const first = { runs, making, ...(await measure()) };
    if (!process.env.BENCH_READS_AGAIN) return first;
    // BENCH_READS_AGAIN=1: the world is kept, and each SIGUSR2 reads it again with the API started
    // afresh from dist as it is then (rebuilt at a later commit, say); SIGUSR1 ends the bench.
    let latest = first;
    for (;;) {
      results.reads = latest;
      writeAll();
      log(`reads: measured at ${latest.commit}; SIGUSR2 (kill -USR2 ${process.pid}) reads again, SIGUSR1 ends`);
      // A signal listener alone does not keep Node's event loop alive: the timer does.
      const keepAlive = setInterval(() => {}, 60_000);
      const signal = await new Promise<string>((resolve) => {
        const on = (name: string) => () => {
          process.off('SIGUSR1', usr1);
          process.off('SIGUSR2', usr2);
          clearInterval(keepAlive);
          resolve(name);
        };
        const [usr1, usr2] = [on('SIGUSR1'), on('SIGUSR2')];
        process.on('SIGUSR1', usr1);
        process.on('SIGUSR2', usr2);
      });
      if (signal === 'SIGUSR1') return latest;
      await stopChild(apiProc);
      procs.splice(procs.indexOf(apiProc), 1);
      apiProc = startNode('api', 'src/api/server.js', [], { ...env, PORT: String(apiPort) }, dir);
      await waitFor('API', ok(`${api}/readyz`), 60_000);
      latest = { runs: (await temporal.workflow.count(visible)).count, making, ...(await measure()) };
    }
  }

  /** The read rows on the reads tenant's world, as the API built from dist now answers them. */
  async function measureReads(tenantId: string, visible: string, pending: string[], call: <T = any>(token: string, method: string, url: string, body?: unknown) => Promise<T>) {
    const [requester, reviewer] = await Promise.all([stack.issueToken(tenantId, REQUESTER, { expiresIn: '4h' }), stack.issueToken(tenantId, REVIEWER, { expiresIn: '4h' })]);
    // One bare visibility call: what each read stands on.
    const { namespace } = temporal.options;
    const bare = async (query: string, pageSize: number, token?: Uint8Array) =>
      temporal.workflowService.listWorkflowExecutions({ namespace, query, pageSize, nextPageToken: token });
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const ms = (values: number[]) => ({ p50: round(percentile(values, 50), 1), p99: round(percentile(values, 99), 1) });
    /** Each sample times the API's call and then its floor's, in turn (the order alternating), so drift in the machine's load falls on both. */
    const timedPair = async (n: number, api: (i: number) => Promise<unknown>, floor: (i: number) => Promise<unknown>) => {
      const [apiMs, floorMs]: number[][] = [[], []];
      const time = async (call: (i: number) => Promise<unknown>, i: number, into: number[]) => {
        const t0 = performance.now();
        await call(i);
        into.push(performance.now() - t0);
      };
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) await time(api, i, apiMs), await time(floor, i, floorMs);
        else await time(floor, i, floorMs), await time(api, i, apiMs);
      }
      return { api: ms(apiMs), floor: ms(floorMs) };
    };
    const n = settings.readsSamples;
    const principal = `AccessPrincipal = '${encodeURIComponent(REQUESTER.sub)}'`;
    const pendingQuery = `${visible} AND AccessAwaitingReview = true`;
    const queuePage = await timedPair(n, () => call(reviewer, 'GET', '/v1/access/requests?status=pending&limit=50'), () => bare(pendingQuery, 50));
    const grantsPage = await timedPair(n, () => call(requester, 'GET', '/v1/access/grants?limit=50'), () => bare(`${visible} AND ${principal}`, 50));
    const idOf = (i: number) => pending[(i * 7919) % pending.length];
    const byId = await timedPair(n, (i) => call(reviewer, 'GET', `/v1/access/requests/${idOf(i)}`), (i) => bare(`${visible} AND AccessRequestIds = '${idOf(i)}'`, 50));
    // Every pending request, a page of 100 at a time, as a reviewer pages through the queue; then
    // the same pages of bare visibility calls; five passes of each, in turn. Each page is timed.
    const passes: { listed: string[]; ms: number; floorMs: number }[] = [];
    const [apiPageMs, floorPageMs]: number[][] = [[], []];
    for (let pass = 0; pass < 5; pass++) {
      const listed: string[] = [];
      const apiFrom = apiPageMs.length;
      for (let cursor: string | null = null, first = true; first || cursor; first = false) {
        const t0 = performance.now();
        const page: { requests: { id: string }[]; next_cursor: string | null } = await call(
          reviewer,
          'GET',
          `/v1/access/requests?status=pending&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        apiPageMs.push(performance.now() - t0);
        listed.push(...page.requests.map((r) => r.id));
        cursor = page.next_cursor;
      }
      const floorFrom = floorPageMs.length;
      for (let token: Uint8Array | undefined, first = true; first || token; first = false) {
        const t0 = performance.now();
        const page = await bare(pendingQuery, 100, token);
        floorPageMs.push(performance.now() - t0);
        token = page.nextPageToken?.length ? page.nextPageToken : undefined;
      }
      passes.push({ listed, ms: sum(apiPageMs.slice(apiFrom)), floorMs: sum(floorPageMs.slice(floorFrom)) });
    }
    const listed = passes[0].listed;
    const unique = new Set(listed);
    // One reconciliation round of the tenant: what it lists follows the grants, not the runs.
    const t2 = performance.now();
    const reconciled = await temporal.workflow.execute<(input: { tenantId: string }) => Promise<ReconcileReport>>('reconcileWorkflow', {
      workflowId: `bench-reconcile/${Date.now()}`,
      taskQueue: workerEnv.taskQueue,
      args: [{ tenantId }],
    });
    const reconcile = {
      seconds: round((performance.now() - t2) / 1000, 1),
      listing: reconciled.listing,
      listed: reconciled.listed,
      grantsChecked: reconciled.grantsChecked,
      assignmentsChecked: reconciled.assignmentsChecked,
      restored: reconciled.restored.length,
      removed: reconciled.removed.length,
    };
    return {
      commit: execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(),
      reconcile,
      samples: n,
      queuePage,
      grantsPage,
      requestById: byId,
      allPending: {
        passes: passes.length,
        pages: apiPageMs.length / passes.length,
        ms: round(percentile(passes.map((p) => p.ms), 50), 0),
        page: ms(apiPageMs),
        floorPages: floorPageMs.length / passes.length,
        floorMs: round(percentile(passes.map((p) => p.floorMs), 50), 0),
        floorPage: ms(floorPageMs),
        listed: listed.length,
        unique: unique.size,
        // In every pass.
        everyPendingOnce: passes.every(({ listed }) => {
          const unique = new Set(listed);
          return listed.length === unique.size && pending.every((id) => unique.has(id)) && unique.size === settings.readsPending;
        }),
      },
    };
  }

  /**
   * One tenant's grant runs grow to each size of `settings.reconcileRuns`; at each, one round runs
   * alone and the calls it makes are counted at the proxy. Of the runs added each time, a tenth are
   * active grants (of which 1%, at most 100, are then terminated by an operator and left behind
   * for the round to remove) and the rest closed requests, spread over the users and the listed
   * accounts. The old scan listed every (listed account, permission set) pair of the instance.
   */
  async function reconcileScenario() {
    const tenantId = RECONCILE_TENANT.id;
    const { users, accounts, permissionSets, proxy } = reconcileWorld!;
    const tokens = await Promise.all(users.map((u) => stack.issueToken(tenantId, u, { expiresIn: '12h' })));
    /** The i-th key of a role: users in turn, each on accounts of its own stride, so grants spread over users and accounts (unique while i < users × accounts). */
    const keyOf = (i: number) => {
      const user = i % users.length;
      return { user, acct: accounts[(Math.floor(i / users.length) + user * 61) % accounts.length] };
    };
    const visible = `WorkflowType = 'grantWorkflow' AND ExecutionStatus != 'ContinuedAsNew' AND AccessTenant = '${tenantId}'`;
    const count = async (where: string) => (await temporal.workflow.count(`${visible} AND ${where}`)).count;
    const total = { closed: 0, active: 0, terminated: 0 };
    const rounds = [];
    for (const size of settings.reconcileRuns) {
      const adding = size - total.closed - total.active;
      if (adding <= 0) continue;
      const active = Math.round(adding / 10);
      const closed = adding - active;
      const terminated = Math.min(100, Math.ceil(active / 100));
      const [firstClosed, firstActive] = [total.closed, total.active];
      log(`reconcile: adding ${closed} closed runs and ${active} active grants`);
      const [closedSeconds, activeSeconds] = await Promise.all([
        made('closed runs (requests withdrawn)', closed, (i) => {
          const k = keyOf(firstClosed + i);
          return withdrawnRun(tenantId, tokens[k.user], users[k.user].sub, k.acct);
        }, 48),
        made('active grants', active, async (i) => {
          const k = keyOf(firstActive + i);
          await ask(tenantId, tokens[k.user], k.acct, ROLE);
        }, 16),
      ]);
      total.closed += closed;
      total.active += active;
      await waitFor('every new grant active', async () => (await count(`ExecutionStatus = 'Running' AND AccessStatus = 'active'`)) >= total.active - total.terminated, 60 * 60_000);
      // An operator terminates some from the Web UI: no cleanup runs, their assignments stay.
      for (let i = 0; i < terminated; i++) {
        const k = keyOf(firstActive + i);
        const key = { tenantId, principalId: users[k.user].sub, target: `AWS::Account::${k.acct}`, role: ROLE };
        await temporal.workflow.getHandle(grantWorkflowId(key)).terminate('bench: operator terminates');
      }
      total.terminated += terminated;
      await waitFor('every run closed and listed', async () =>
        (await count(`ExecutionStatus = 'Completed'`)) >= total.closed && (await count(`ExecutionStatus = 'Terminated'`)) >= total.terminated, 30 * 60_000);

      await proxy.reset();
      const t0 = performance.now();
      const report = await temporal.workflow.execute<(input: { tenantId: string }) => Promise<ReconcileReport>>('reconcileWorkflow', {
        workflowId: `bench-reconcile/${size}/${Date.now()}`,
        taskQueue: workerEnv.taskQueue,
        args: [{ tenantId }],
      });
      const seconds = round((performance.now() - t0) / 1000, 1);
      const stats = await proxy.stats();
      const removed = report.removed.filter((r) => r.removed).length;
      const measured = {
        runs: (await temporal.workflow.count(visible)).count,
        open: await count(`ExecutionStatus = 'Running'`),
        leftBehind: terminated,
        seconds,
        calls: stats.calls,
        callsByOperation: stats.counts,
        listing: report.listing,
        listed: report.listed,
        grantsChecked: report.grantsChecked,
        removed,
        restored: report.restored.length,
        everyLeftoverRemoved: removed === terminated && !report.truncated,
        making: { closedSeconds, activeSeconds },
      };
      log('reconcile:', JSON.stringify(measured));
      rounds.push(measured);
    }
    // Every account the tenant lists or has a grant on, times every permission set of the instance (here every grant is on a listed account).
    return { oldScanPairs: accounts.length * permissionSets.length, callsPerSecond: loadConfig(configPath).tenants.find((t) => t.id === tenantId)!.aws.limits.calls_per_second, rounds };
  }

  async function heldScenario() {
    const activeNow = async () => (await temporal.workflow.count(`WorkflowType = 'grantWorkflow' AND AccessStatus = 'active'`)).count;
    const createStarted = Date.now();
    let workerPeak = 0;
    const sampler = setInterval(() => (workerPeak = Math.max(workerPeak, memoryOf(worker.proc.pid).rss)), 2000);
    let failures = 0;
    let sent = 0;
    let active = await activeNow();
    // Grants of the earlier scenarios expire while these are made: top up until enough are held.
    for (let round = 1; round <= 3 && active < settings.held; round++) {
      const toCreate = settings.held - active;
      log(`held: ${active} active, creating ${toCreate} more at ${settings.createRate}/s`);
      const roundStarted = Date.now();
      const failedBefore = failures;
      const inFlight = new Set<Promise<void>>();
      for (let j = 0; j < toCreate; j++, sent++) {
        const due = roundStarted + (j * 1000) / settings.createRate;
        if (due > Date.now()) await sleep(due - Date.now());
        while (inFlight.size >= 50) await Promise.race(inFlight);
        const p: Promise<void> = ensure(sent, account(5, sent), 7200)
          .then(() => undefined)
          .catch(() => void failures++)
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (sent % 1000 === 999) log(`held: ${sent + 1} ensures sent, ${await activeNow()} active, worker RSS ${Math.round(memoryOf(worker.proc.pid).rss / 2 ** 20)} MiB`);
      }
      await Promise.all(inFlight);
      // Calls that failed (e.g. 503 on an overloaded machine) make no grant: do not wait for them.
      const expected = Math.min(settings.held, active + toCreate - (failures - failedBefore));
      const deadline = Date.now() + 15 * 60_000;
      let lastChange = Date.now();
      active = await activeNow();
      while (active < expected && Date.now() < deadline && Date.now() - lastChange < 60_000) {
        await sleep(5000);
        const now = await activeNow();
        if (now !== active) lastChange = Date.now();
        active = now;
        log(`held: ${active} active`);
      }
    }
    const createSeconds = (Date.now() - createStarted) / 1000;
    clearInterval(sampler);
    await sleep(5000); // let the dust settle before reading memory
    const workerMem = memoryOf(worker.proc.pid);
    const workerHeap = await heapOf(`http://127.0.0.1:${workerMetricsPort}/metrics`);
    const apiMem = memoryOf(apiProc.proc.pid);
    log('held: floor and no-change ensure while held');
    const floorHeld = await measure(queryFloorSpec);
    const noChangeHeld = await measure(noChangeSpec);
    const mib = (b: number) => round(b / 2 ** 20, 0);
    return {
      activeGrants: await activeNow(),
      createFailures: failures,
      createSeconds: round(createSeconds, 0),
      workerRssMiB: mib(workerMem.rss),
      workerPeakRssMiB: mib(Math.max(workerMem.peak, workerPeak)),
      workerHeapUsedMiB: mib(workerHeap.used),
      workerHeapTotalMiB: mib(workerHeap.total),
      workerExternalMiB: mib(workerHeap.external),
      apiRssMiB: mib(apiMem.rss),
      apiPeakRssMiB: mib(apiMem.peak),
      noChangeEnsure: noChangeHeld,
      floor: floorHeld,
    };
  }
}

// ---------------------------------------------------------------------------------------------

function writeResults(results: Record<string, any>): void {
  const out = path.join(repoRoot, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, `${settings.out}.json`), JSON.stringify(results, null, 2) + '\n');
  const { noChange, extension, activation, scaleOut, expiry, held, reads, reconcile, entitlements, console: consolePages, organization, manyAccounts, facts, settings: s, machine } = results;
  const x = (a: number, b: number) => `${round(a / b, 2)}x`;
  const yes = (ok: boolean) => (ok ? 'met' : '**missed**');
  const section = (name: string, value: any, make: () => string[][]): string[][] =>
    value === undefined ? [] : value.error ? [[name, `failed: ${value.error}`, '', '', '', '**missed**']] : make();
  const rows = [
    ...section('no-change ensure', noChange, () => [
      ['no-change ensure: p99', `${noChange.ensure.p99} ms`, `${noChange.floor.p99} ms`, x(noChange.ensure.p99, noChange.floor.p99), '≤ 1.25x', yes(noChange.ensure.p99 <= 1.25 * noChange.floor.p99)],
      ['no-change ensure: throughput', `${noChange.ensure.rps} req/s`, `${noChange.floor.rps} req/s`, x(noChange.ensure.rps, noChange.floor.rps), '≥ 0.8x', yes(noChange.ensure.rps >= 0.8 * noChange.floor.rps)],
      ['no-change ensure: p50', `${noChange.ensure.p50} ms`, `${noChange.floor.p50} ms`, x(noChange.ensure.p50, noChange.floor.p50), '', ''],
    ]),
    ...section('activation', activation, () => [
      ['activation: time to active, p50', `${activation.timeToActiveMs.p50} ms`, `${round(activation.floorMs.p50)} ms`, x(activation.timeToActiveMs.p50, activation.floorMs.p50), '≤ 1.5x', yes(activation.timeToActiveMs.p50 <= 1.5 * activation.floorMs.p50)],
      ['activation: time to active, p99', `${activation.timeToActiveMs.p99} ms`, `${round(activation.floorMs.p99)} ms`, x(activation.timeToActiveMs.p99, activation.floorMs.p99), '', ''],
      ['activation: ensure response, p50', `${activation.ensureResponseMs.p50} ms`, `${round(activation.floorMs.p50)} ms`, x(activation.ensureResponseMs.p50, activation.floorMs.p50), '', ''],
    ]),
    ...section('extension', extension, () => {
      const { ensure, floor, emptyUpdateFloor: empty } = extension;
      return [
        ['extension ensure: p50', `${ensure.p50} ms`, `${floor.p50} ms (one update and one audit write)`, x(ensure.p50, floor.p50), '≤ 1.5x', yes(ensure.p50 <= 1.5 * floor.p50)],
        ['extension ensure: p99', `${ensure.p99} ms`, `${floor.p99} ms`, x(ensure.p99, floor.p99), '', ''],
        ['extension ensure: throughput', `${ensure.rps} req/s`, `${floor.rps} req/s`, x(ensure.rps, floor.rps), '≥ 0.7x', yes(ensure.rps >= 0.7 * floor.rps)],
        ['extension ensure: p50, ratio to one empty update', `${ensure.p50} ms`, `${empty.p50} ms (one empty update)`, x(ensure.p50, empty.p50), '', ''],
        ['extension ensure: p99, ratio to one empty update', `${ensure.p99} ms`, `${empty.p99} ms`, x(ensure.p99, empty.p99), '', ''],
        ['extension ensure: throughput, ratio to one empty update', `${ensure.rps} req/s`, `${empty.rps} req/s`, x(ensure.rps, empty.rps), '', ''],
      ];
    }),
    ...section('scale-out', scaleOut, () => [
      ['scale-out, 2 workers + 2 APIs: no-change throughput', `${scaleOut.scaled.noChangeRps} req/s`, `${scaleOut.baseline.noChange.rps} req/s (1 + 1)`, `${scaleOut.noChangeRatio}x`, '', ''],
      ['scale-out, 2 workers + 2 APIs: activations per second', `${scaleOut.scaled.activationsPerSecond}/s`, `${scaleOut.baseline.activationsPerSecond}/s (1 + 1)`, `${scaleOut.activationRatio}x`, '', ''],
    ]),
    ...section('expiry', expiry, () => {
      // Each row's figures are the medians over the runs; its ratio is the median of the runs' ratios, and their spread (min–max).
      const runs: any[] = expiry.runs;
      const med = (of: (run: any) => number) => round(median(runs.map(of)), 2);
      const ratios = (of: (run: any) => number) => {
        const values = runs.map(of);
        return `${round(median(values), 2)}x (${round(Math.min(...values), 2)}–${round(Math.max(...values), 2)})`;
      };
      const grants = Math.min(...runs.map((r) => r.grants));
      const what = `${grants} expiring together (${runs.length} runs)`;
      const everyDeleted = runs.every((r) => r.deleted === r.grants);
      const lags = (key: 'lagSeconds' | 'endAccessFloor' | 'bareTimers') => {
        const of = (r: any) => (key === 'lagSeconds' ? r.lagSeconds : r[key].lagSeconds);
        return `${med((r) => of(r).p50)} / ${med((r) => of(r).p99)} / ${med((r) => of(r).max)} s`;
      };
      return [
        ...(['p50', 'p99'] as const).map((p) => [
          `${what}: lag ${p}`,
          `${med((r) => r.lagSeconds[p])} s`,
          `${med((r) => r.endAccessFloor.lagSeconds[p])} s (timers spread alike, each ending access)`,
          ratios((r) => r.ratios.endAccess[p]),
          '≤ 1.3x',
          yes(median(runs.map((r) => r.ratios.endAccess[p])) <= 1.3 && everyDeleted),
        ]),
        ...(['p50', 'p99'] as const).map((p) => [
          `${what}: lag ${p}, ratio to bare timers`,
          `${med((r) => r.lagSeconds[p])} s`,
          `${med((r) => r.bareTimers.lagSeconds[p])} s (bare timers due together)`,
          ratios((r) => r.ratios.bareTimers[p]),
          '',
          '',
        ]),
        [`${what}: lag p50 / p99 / max`, lags('lagSeconds'), `${quotaFloorSeconds(grants, s.instances, s.callsPerSecond)} s (provider quota)`, '', '', ''],
        [`${grants} timers spread as the grants' expires_at, each one DeleteAccountAssignment in a local activity: due to the call, p50 / p99 / max`, lags('endAccessFloor'), '', '', '', ''],
        [`${runs[0].bareTimers.workflows} bare Temporal timers due together: due to close, p50 / p99 / max`, lags('bareTimers'), '', '', '', ''],
      ];
    }),
    ...section('held', held, () => [
      [`${held.activeGrants} active grants: worker RSS (peak)`, `${held.workerRssMiB} MiB (${held.workerPeakRssMiB} MiB)`, '', '', '< 1 GiB', yes(held.workerPeakRssMiB * 2 ** 20 < GiB && held.activeGrants >= s.held)],
      [`${held.activeGrants} active grants: worker V8 heap used / heap total / external`, `${held.workerHeapUsedMiB} / ${held.workerHeapTotalMiB} / ${held.workerExternalMiB} MiB`, '', '', '', ''],
      [`${held.activeGrants} active grants: API RSS (peak)`, `${held.apiRssMiB} MiB (${held.apiPeakRssMiB} MiB)`, '', '', '', ''],
      [`${held.activeGrants} active grants: no-change p99`, `${held.noChangeEnsure.p99} ms`, `${held.floor.p99} ms`, x(held.noChangeEnsure.p99, held.floor.p99), '', ''],
      [`${held.activeGrants} active grants: no-change throughput`, `${held.noChangeEnsure.rps} req/s`, `${held.floor.rps} req/s`, x(held.noChangeEnsure.rps, held.floor.rps), '', ''],
    ]),
    ...section('reads', reads, () => [
      ...([
        ['a reviewer’s first page of pending requests (50)', reads.queuePage],
        ['a principal’s grants page (50)', reads.grantsPage],
        ['a request by id', reads.requestById],
      ] as const).flatMap(([what, r]) => [
        [`${what}: p99`, `${r.api.p99} ms`, `${r.floor.p99} ms (one visibility call)`, x(r.api.p99, r.floor.p99), '≤ 1.5x', yes(r.api.p99 <= 1.5 * r.floor.p99)],
        [`${what}: p50`, `${r.api.p50} ms`, `${r.floor.p50} ms`, x(r.api.p50, r.floor.p50), '', ''],
      ]),
      [
        `a reconciliation round of the tenant (${reads.runs} runs)`,
        `${reads.reconcile.seconds} s, listing by ${reads.reconcile.listing} (${reads.reconcile.listed}), ${reads.reconcile.grantsChecked} grants checked`,
        '',
        '',
        '',
        '',
      ],
      [
        `all ${s.readsPending} pending requests, pages of 100 (median of ${reads.allPending.passes ?? 1} passes)`,
        `${reads.allPending.ms} ms, ${reads.allPending.pages} pages, ${reads.allPending.unique} listed`,
        `${reads.allPending.floorMs} ms (${reads.allPending.floorPages} visibility pages)`,
        x(reads.allPending.ms, reads.allPending.floorMs),
        'each once',
        yes(reads.allPending.everyPendingOnce),
      ],
      ...(reads.allPending.page
        ? [
            [`paging through them: a page (100), p99`, `${reads.allPending.page.p99} ms`, `${reads.allPending.floorPage.p99} ms (one visibility page)`, x(reads.allPending.page.p99, reads.allPending.floorPage.p99), '≤ 1.5x', yes(reads.allPending.page.p99 <= 1.5 * reads.allPending.floorPage.p99)],
            [`paging through them: a page (100), p50`, `${reads.allPending.page.p50} ms`, `${reads.allPending.floorPage.p50} ms`, x(reads.allPending.page.p50, reads.allPending.floorPage.p50), '', ''],
          ]
        : []),
    ]),
    ...section('reconcile', reconcile, () =>
      reconcile.rounds.map((r: any) => {
        const { ListAccountAssignmentsForPrincipal: perUser = 0, ListAccountAssignments: perPair = 0, ListPermissionSets: sets = 0, DescribePermissionSet: described = 0 } = r.callsByOperation;
        const oldMinutes = round(reconcile.oldScanPairs / reconcile.callsPerSecond / 60);
        return [
          `a reconciliation round, ${r.runs} grant runs (${r.open} open, ${r.leftBehind} left behind by terminations)`,
          `${r.seconds} s; ${r.calls} calls: ${perUser} per user, ${perPair} per pair, ${sets + described} for the permission sets' names, ` +
            `${r.calls - perUser - perPair - sets - described} to remove; ${r.grantsChecked} grants checked, ${r.removed} removed`,
          `${reconcile.oldScanPairs} calls (every pair; ${oldMinutes} min at ${reconcile.callsPerSecond} calls/s)`,
          `${round((100 * r.calls) / reconcile.oldScanPairs, 2)}%`,
          'every leftover removed',
          yes(r.everyLeftoverRemoved),
        ];
      }),
    ),
  ];
  rows.push(
    ...section('entitlements', entitlements, () => {
      const e = entitlements;
      const what = `what may I ask for: first page (${e.firstPageSize}) of ${e.accounts} accounts × ${e.permissionSets} permission sets`;
      const floor = (p: 'p50' | 'p99') => `${e.floorMs[p]} ms (100 Cedar decisions, ${e.decisionMs[p]} ms each)`;
      return [
        [`${what}, a new principal: p50`, `${e.coldFirstPageMs.p50} ms`, floor('p50'), x(e.coldFirstPageMs.p50, e.floorMs.p50), '< 200 ms', yes(e.coldFirstPageMs.p50 < 200)],
        [`${what}, a new principal: p99`, `${e.coldFirstPageMs.p99} ms`, floor('p99'), x(e.coldFirstPageMs.p99, e.floorMs.p99), '', ''],
        [`${what}, asked again: p50 / p99`, `${e.warmFirstPageMs.p50} / ${e.warmFirstPageMs.p99} ms`, floor('p50'), x(e.warmFirstPageMs.p50, e.floorMs.p50), '', ''],
        [
          `every pair, pages of 100`,
          `${e.allPages.seconds} s, ${e.allPages.pages} pages, ${e.allPages.listed} listed`,
          `${e.everyDecidedMs} s (one decision per pair)`,
          '',
          'each once',
          yes(e.allPages.listed === e.pairs),
        ],
      ];
    }),
  );
  rows.push(
    ...section('organization', organization, () => {
      const o = organization;
      const row = (label: string, r: any, target: string, met: boolean | undefined) => [
        `organisation ${label}: ${r.accounts} accounts in ${s.organizationOus} OUs`,
        `${r.seconds} s, ${r.calls} calls (result ${round(r.resultBytes / 1024)} KB for a ${round(r.mapBytes / 1024)} KB map)`,
        `${r.floorSeconds} s (its calls at ${o.callsPerSecond} a second)`,
        x(r.seconds, r.floorSeconds),
        target,
        met === undefined ? '' : yes(met),
      ];
      const floorRow = o.refreshFloor
        ? [[`organisation refresh, its calls alone: ${o.refresh.accounts} accounts`, `${o.refreshFloor.seconds} s, ${o.refreshFloor.calls} calls`, `sent straight to moto through the pacer`, o.refreshFloor.seconds ? x(o.refresh.seconds, o.refreshFloor.seconds) : '', 'the refresh within 1.5x of it', yes(o.refresh.seconds <= 1.5 * o.refreshFloor.seconds)]]
        : [];
      return [row('first read (every account\'s tags)', o.first, '', undefined), row('refresh', o.refresh, '< 60 s', o.refresh.seconds < 60), ...floorRow];
    }),
  );
  rows.push(
    ...section('facts', facts, () => [
      [
        `no-change ensure with on call and ticket sources (cached): p99, the median of 3 runs (ratios ${facts.p99Ratios.join(', ')})`,
        `${facts.withSources.p99} ms (p50 ${facts.withSources.p50} ms; ${facts.sourceRequests} calls to the sources while measured)`,
        `${facts.without.p99} ms (p50 ${facts.without.p50} ms), the same ensure in a tenant without sources`,
        x(facts.withSources.p99, facts.without.p99),
        '≤ 1.25x',
        yes(facts.withSources.p99 <= 1.25 * facts.without.p99),
      ],
      ['no-change ensure with sources: throughput', `${facts.withSources.rps} req/s`, `${facts.without.rps} req/s`, x(facts.withSources.rps, facts.without.rps), '', ''],
    ]),
  );
  rows.push(
    ...section('console', consolePages, () => {
      const c = consolePages;
      const row = (name: 'access' | 'request', label: string) => {
        const p = c[name];
        return [
          [`console: first load of ${label} (no cache, signed in): p50 / p99`, `${p.loadMs.p50} / ${p.loadMs.p99} ms (HTML ${p.htmlMs.p50} / ${p.htmlMs.p99} ms)`, `${p.floorMs.p50} / ${p.floorMs.p99} ms (the API calls it makes)`, x(p.htmlMs.p50, p.floorMs.p50), 'p50 < 300 ms', yes(p.loadMs.p50 < 300)],
        ];
      };
      return [
        ...row('access', `My access (${c.grants} grants)`),
        ...row('request', 'Request access (a page of the catalogue)'),
        ['console: script on a first load', `${c.scriptKB} KB (and ${c.stylesheetKB} KB of stylesheet)`, '', '', '< 100 KB', yes(c.scriptKB < 100)],
      ];
    }),
  );
  rows.push(
    ...section('many accounts', manyAccounts, () => {
      const m = manyAccounts;
      const what = `one ensure of ${m.accounts} accounts × 1 role`;
      return [
        [`${what}: the answer (${m.activated} activated)`, `${m.answerMs} ms`, '', '', 'before every assignment (not waiting for AWS)', yes(m.answerMs < 1000 * m.everyAssignmentSeconds)],
        [`${what}: the answer when every grant is reviewed (one access request, nothing provisioning)`, `${m.requestedAnswerMs} ms`, '', '', '', ''],
        [
          `${what}: until every assignment exists`,
          `${m.everyAssignmentSeconds} s`,
          `${m.floorSeconds} s (the same assignments' ${m.floorCalls} calls alone, ${m.callsPerSecond}/s, ${m.operationsInFlight} in flight)`,
          x(m.everyAssignmentSeconds, m.floorSeconds),
          '',
          '',
        ],
      ];
    }),
  );
  const problems = [noChange?.ensure, noChange?.floor, extension?.ensure, extension?.floor, extension?.emptyUpdateFloor, scaleOut?.baseline?.noChange, ...(scaleOut?.scaled?.noChangeRuns ?? []), held?.noChangeEnsure, held?.floor]
    .map((r: LoadResult | undefined) => (r ? r.errors + r.non2xx + r.unexpected : 0))
    .reduce((a, b) => a + b, 0);
  // Where the time went: CPU per request of each process, for every autocannon run.
  const cpuRuns: [string, LoadResult | undefined][] = [
    ['no-change ensure', noChange?.ensure],
    ['its floor: one query', noChange?.floor],
    ['extension ensure', extension?.ensure],
    ['its floor: one update and one audit write', extension?.floor],
    ['its floor: one empty update', extension?.emptyUpdateFloor],
    ['no-change ensure, grants held', held?.noChangeEnsure],
    ['its floor, grants held', held?.floor],
  ];
  const measured = cpuRuns.filter((r): r is [string, LoadResult] => r[1]?.cpuMsPerRequest !== undefined);
  const names = [...new Set(measured.flatMap(([, r]) => Object.keys(r.cpuMsPerRequest!)))].sort();
  const cpuTable = measured.length === 0 ? [] : [
    '',
    'CPU per request, in ms, by process (user + system time over the measured run, divided by its requests):',
    '',
    `| run | ${names.join(' | ')} | all |`,
    `|---|${names.map(() => '---|').join('')}---|`,
    ...measured.map(([label, r]) => {
      const cpu = r.cpuMsPerRequest!;
      const all = Object.values(cpu).reduce((a, b) => a + b, 0);
      return `| ${label} | ${names.map((n) => cpu[n]?.toFixed(2) ?? '').join(' | ')} | ${all.toFixed(2)} |`;
    }),
  ];
  const md = [
    '# Benchmark results',
    '',
    `${new Date().toISOString()}; ${machine.cpus} × ${machine.cpu}; Node ${machine.node}; ${results.totalMinutes} min; load average at the end ${machine.loadavgAtEnd.join(' ')}.`,
    `Everything co-located: ${ENGINE}, moto, worker, API, floors and the load generator.`,
    '',
    '| scenario | result | floor | ratio | target | |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Settings: ${s.connections} connections × ${s.durationSeconds} s per autocannon run (after a warm-up); ` +
      `${s.instances} tenants, each on its own IAM Identity Center instance; activations: ${s.activations} at ${s.activationConcurrency} in flight` +
      (!scaleOut || scaleOut.error ? '.' : `; scale-out: ${s.scaleActivations} activations at ${s.scaleConcurrency} in flight per run, and the no-change load split over the two APIs (half the connections each).`),
    !expiry || expiry.error
      ? ''
      : `Expiry: ${expiry.runs.length} runs, each the grants then their floors; grants made ${expiry.runs.map((r: any) => r.grants).join(', ')} (of ${expiry.asked} asked), ` +
        `expires_at spread over ${expiry.runs.map((r: any) => r.expiresAtSpreadMs).join(', ')} ms; each DeleteAccountAssignment dated by its arrival at a proxy in front of moto ` +
        `(${expiry.runs.map((r: any) => r.deleted).join(', ')} seen, ${expiry.runs.map((r: any) => r.deletedEarly).join(', ')} before expires_at); the end-access floor's calls through the same proxy, on accounts of its own.`,
    !held || held.error ? '' : `Held: ${held.activeGrants} active grants (${s.held} asked), created in ${held.createSeconds} s (${held.createFailures} failed calls).`,
    !reads || reads.error
      ? ''
      : `Reads: one tenant with ${reads.runs} grant runs (${s.readsClosed} closed, ${s.readsActive} active, ${s.readsPending} pending requests; made in ` +
        `${reads.making.closedSeconds} + ${reads.making.activeSeconds} + ${reads.making.pendingSeconds} s), ${reads.samples} sequential calls per row, read by the API at ${reads.commit}.`,
    !reconcile || reconcile.error
      ? ''
      : `Reconciliation: one tenant listing ${s.reconcileAccounts} accounts on an instance with ${s.reconcilePermissionSets} permission sets, ${s.reconcileUsers} users; ` +
        `calls counted at a proxy in front of moto (IAM Identity Center's admin API; Identity Store lookups not counted); runs made in ` +
        `${reconcile.rounds.map((r: any) => `${r.making.closedSeconds} s (closed) and ${r.making.activeSeconds} s (active)`).join(', then ')}.`,
    `Errors, non-2xx and unexpected answers across the autocannon runs: ${problems}.`,
    ...cpuTable,
    '',
  ].join('\n');
  writeFileSync(path.join(out, `${settings.out}.md`), md);
  console.log('\n' + md);
}

/**
 * The least time N deletions spread over the instances can take when the pacer lets one call go
 * every (1000 + WIRE_SLACK_MS) / callsPerSecond ms per instance (one call per deletion): the first
 * goes at once, the busiest instance's last one (its count - 1) spacings later.
 */
function quotaFloorSeconds(grants: number, instances: number, callsPerSecond: number): number {
  const spacingMs = (1000 + WIRE_SLACK_MS) / callsPerSecond;
  return round(((Math.ceil(grants / instances) - 1) * spacingMs) / 1000);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
