// The bench's settings (environment variables, read once) and the world's fixed names: the
// regions, tenants and people every scenario shares.
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
export const ENGINE =
  process.env.TEMPORAL_PERSISTENCE === 'postgres' ? 'Temporal server on PostgreSQL (4 history shards)' : 'Temporal dev server (SQLite)';

export const settings = {
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
  /** Reads: requests in flight while the runs are made, calls timed per read row, and passes through
   * all pending requests. A p99 wants about 1,000 samples: with 200 it is the second-slowest call,
   * and one stall of the machine decides it. */
  readsConcurrency: int('BENCH_READS_CONCURRENCY', 64),
  readsSamples: int('BENCH_READS_SAMPLES', 1000),
  readsPasses: int('BENCH_READS_PASSES', 50),
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
  /** Which scenarios to run (comma-separated); default all (bench/run.ts fills them in). */
  scenarios: process.env.BENCH_SCENARIOS ? process.env.BENCH_SCENARIOS.split(',').map((s) => s.trim()) : [],
};

export const REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'eu-west-1', 'eu-west-2', 'eu-west-3', 'eu-central-1',
  'eu-north-1', 'ap-south-1', 'ap-northeast-1', 'ap-northeast-2', 'ap-southeast-1', 'ap-southeast-2', 'ca-central-1', 'sa-east-1'];
export const ROLE = 'ReadOnlyAccess'; // auto-activated by the shipped policies
export const USER = { sub: 'bench-user', email: 'bench@example.com', groups: [] as string[] };
/** The reads scenario's tenant, on an instance of its own (REGIONS holds the others'). */
export const READS_TENANT = { id: 'b0000000-0000-4000-8000-00000000ead5', region: 'eu-south-1' };
/** The reconciliation scenario's tenant, on an instance of its own whose calls are counted at a proxy. */
export const RECONCILE_TENANT = { id: 'b0000000-0000-4000-8000-0000000ec0c1', region: 'ap-northeast-3' };
/** The entitlements scenario's tenant (issue 37 §3): an organisation's accounts and permission sets, on an instance of its own. */
export const CATALOGUE_TENANT = { id: 'b0000000-0000-4000-8000-0000000ca7a1', region: 'me-south-1' };
export const CATALOGUE_ENVIRONMENTS = ['production', 'staging', 'development'];
/** The organisation scenario's tenant (issue 39): its accounts in AWS Organizations, on an instance of its own at the default quota. */
export const ORGANIZATION_TENANT = { id: 'b0000000-0000-4000-8000-0000000a0a90', region: 'ap-east-1' };
/** The console scenario's tenant (issue 38): signed in through a local provider, on the stack's own instance for it. */
export const CONSOLE_TENANT = { id: 'b0000000-0000-4000-8000-00000000c0e5' };
/**
 * The facts scenario's tenant (issue 40): asks a PagerDuty and a Jira (the tests' fakes, on
 * loopback) before every decision, with their answers cached as configured by default.
 */
export const FACTS_TENANT = { id: 'b0000000-0000-4000-8000-00000000fac7' };
export const FACTS_TICKET = 'PAY-1';
/** Grants the console scenario's person holds while their pages load. */
export const CONSOLE_GRANTS = 10;
/** Asks for AdministratorAccess (reviewed by platform-admins in the shipped policies): the same identity-store user as USER. */
export const REQUESTER = { ...USER, groups: ['engineering'] };
export const REVIEWER = { sub: 'bench-reviewer', email: 'reviewer@example.com', groups: ['platform-admins'] };
/** One principal per tenant drives every scenario: far above the per-principal limits' defaults. */
export const BENCH_GRANTS = { max_duration_seconds: 43200, max_open_per_principal: 1_000_000, ensure_rate_per_minute: 10_000_000, ensure_burst: 1_000_000, read_rate_per_minute: 10_000_000, read_burst: 1_000_000 };
export const GiB = 1024 ** 3;

export interface TenantSetup {
  id: string;
  region: string;
  instanceArn: string;
  identityStoreId: string;
  userId: string;
  permissionSetArn: string;
  token: string;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const log = (...args: unknown[]): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...args);

/** A 12-digit account id, unique per scenario (`prefix`) and index. */
export const account = (prefix: number, i: number): string => `${prefix}${String(i).padStart(11, '0')}`;
