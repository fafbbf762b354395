// A local stack for tests and the dev command: a Temporal server (temporal-dev.sh: the dev server,
// or with TEMPORAL_PERSISTENCE=postgres one on PostgreSQL), moto as the AWS IAM Identity Center
// emulator, per-tenant signing keys and the tenants config file.
// Everything it starts it also stops (stop(), or when this process exits).
import { randomBytes } from 'node:crypto';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  SSOAdminClient,
  ListInstancesCommand,
  paginateListPermissionSets,
  DescribePermissionSetCommand,
  CreatePermissionSetCommand,
} from '@aws-sdk/client-sso-admin';
import { IdentitystoreClient, CreateUserCommand, ConflictException } from '@aws-sdk/client-identitystore';
import { CreateBucketCommand, PutObjectLockConfigurationCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { stringify as toYaml } from 'yaml';
import { connectApi, createApi } from '../src/api/server';
import { type AppConfig, loadConfig } from '../src/config';
import type { Logger } from '../src/log';
import { createWorkerMetrics, type WorkerMetrics } from '../src/metrics';
import { freePort } from '../src/net';
import { createWorker } from '../src/worker';
import { type IdentityProvider, type Person, startIdentityProvider } from './identity-provider';

export interface StackTenant {
  id: string;
  name: string;
  /** Absolute path; default <repo>/policies. */
  policies?: string;
  grants?: {
    default_duration_seconds?: number;
    max_duration_seconds?: number;
    pending_request_ttl_seconds?: number;
    max_open_per_principal?: number;
    max_scheduled_per_principal?: number;
    ensure_rate_per_minute?: number;
    ensure_burst?: number;
    read_rate_per_minute?: number;
    read_burst?: number;
  };
  accounts?: Record<string, { environment?: string; name?: string }>;
  accounts_only?: boolean;
  notifications?: {
    webhooks: { url: string; events: string[] }[];
    expiry_warning_seconds?: number;
    slack?: { signing_secret_file: string; bot_token_file: string; api_url?: string; reviewers?: Record<string, { id: string; groups?: string[] }> };
  };
  /**
   * Tenants with it share moto's own IAM Identity Center instance (each must then set
   * accounts_only, with accounts of its own). Every other tenant has an instance of its own, as
   * the service requires of tenants with accounts_only false; without any sharing tenant, the
   * first tenant has moto's instance.
   */
  sharesInstance?: boolean;
  /** Where this tenant's AWS calls go instead of moto (e.g. a proxy in front of it). */
  awsEndpoint?: string;
  /** `aws.revoke_sessions`: a grant's end also ends the user's AWS sessions. */
  revokeSessions?: boolean;
  /** Where this tenant's audit events go instead of moto's S3 (e.g. a proxy in front of it). */
  auditEndpoint?: string;
  /**
   * A local OpenID Connect provider for the tenant (scripts/identity-provider.ts), signing with the
   * tenant's key: the tenant trusts it by its JWKS URL and people sign in with `access login`.
   */
  identityProvider?: { port?: number; people: Person[]; accessTokenSeconds?: number };
  /** Without a local provider: `auth.oidc.client_id` alone, so the sign-in lookup answers. */
  oidcClientId?: string;
  /** `organization`, asked for once moto is seeded (StackOptions.beforeConfig): its ids are moto's. */
  organization?: () => { roots_or_ous: string[]; exclude?: string[]; environment_tag?: string; refresh_interval_seconds?: number };
  /** `groups`, asked for once moto is seeded (StackOptions.beforeConfig): the grantable groups, with moto's ids where given. */
  groups?: () => { name: string; id?: string; environment?: string; brings?: { account: string; permission_set: string }[] }[];
  /** `oncall` and `tickets` (issue 40), as the config file has them. */
  oncall?: Record<string, unknown>;
  tickets?: Record<string, unknown>;
}

export interface StackOptions {
  /** Working folder for db, keys, config, logs (created). */
  dir: string;
  tenants: StackTenant[];
  /** Emails to create in the identity store. */
  users: string[];
  /** Names to create in the SSO instance. */
  permissionSets: string[];
  /** Default: headless (no UI). The dev command passes 8233. */
  temporalUiPort?: number;
  /** Frontend port of a Temporal started here; default a free port. The dev command may pass 7233. */
  temporalPort?: number;
  /**
   * Start a Temporal and a moto of its own even when TEMPORAL_ADDRESS / AWS_ENDPOINT_URL name
   * running ones: for tests that stop and restart the servers.
   */
  ownServers?: boolean;
  /** Runs once moto answers and before the config is written: e.g. an organisation made in moto, whose ids the config names. */
  beforeConfig?: (awsEndpoint: string) => Promise<void>;
}

export interface Stack {
  /** host:port */
  temporalAddress: string;
  /** With TEMPORAL_PERSISTENCE=postgres, the server's folder (PostgreSQL's data, config, ports). */
  temporalDataDir?: string;
  /** http://127.0.0.1:port of moto */
  awsEndpoint: string;
  /** The tenants YAML written for these tenants. */
  configPath: string;
  /** The first tenant's instance. */
  instanceArn: string;
  instanceArnOf(tenantId: string): string;
  identityStoreId: string;
  /**
   * A JWT signed by the tenant's issuer key. `expiresIn`: a jose time span ('1h', '-5m') or a number
   * of seconds from now (negative: already expired); default 1h. `notBefore`: a jose time span.
   */
  issueToken(
    tenantId: string,
    claims: { sub: string; email?: string; groups?: string[]; email_verified?: boolean },
    opts?: { expiresIn?: string | number; notBefore?: string },
  ): Promise<string>;
  /**
   * Stops the Temporal dev server this stack started (SIGTERM: a clean shutdown; SIGKILL: a crash).
   * Throws for a Temporal the stack did not start.
   */
  stopTemporal(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again on the same port and database file, and waits until it answers. */
  startTemporal(): Promise<void>;
  /** The tenant's local OpenID Connect provider, when it has one. */
  identityProviderOf(tenantId: string): IdentityProvider | undefined;
  /** Stops only what it started. */
  stop(): Promise<void>;
}

/** The grant workflow's search attributes and their indexed value types (2 = Keyword, 5 = Bool, 6 = Datetime, 7 = KeywordList). */
export const SEARCH_ATTRIBUTES = {
  AccessTenant: 2,
  AccessPrincipal: 2,
  AccessTarget: 2,
  AccessRole: 2,
  AccessStatus: 2,
  AccessGrantId: 2,
  AccessRequestId: 2,
  AccessExpiresAt: 6,
  AccessRequestIds: 7,
  AccessAwaitingReview: 5,
} as const;

export const TOKEN_AUDIENCE = 'access-api';
/** A tenant with a local identity provider: the API as a resource indicator (RFC 8707), an absolute URI. */
export const SIGN_IN_AUDIENCE = 'urn:jit-access:api';
/** The web console's client at a tenant's local provider; its secret is in the environment variable below. */
export const CONSOLE_CLIENT_ID = 'access-console';
const consoleSecretEnv = (tenantId: string) => `ACCESS_CONSOLE_SECRET_${tenantId.replace(/-/g, '_').toUpperCase()}`;
const JWT_ALG = 'ES256';
const AWS_REGION = 'us-east-1';
const AWS_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
/** Every tenant's audit trail, in moto's S3: one bucket with Object Lock, a folder per tenant. */
export const AUDIT_BUCKET = 'access-audit';
export const AUDIT_PREFIX = 'audit';
const AUDIT_LOCK_DAYS = 1;
const INSTALL_TIMEOUT_MS = 20 * 60_000;
const TEMPORAL_START_TIMEOUT_MS = 60_000;
const MOTO_START_TIMEOUT_MS = 30_000;

/** The repository root: the nearest folder above this file holding temporal-dev.sh (works from dist/ too). */
export const repoRoot: string = (() => {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'temporal-dev.sh'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`temporal-dev.sh not found above ${__dirname}`);
    dir = up;
  }
  return dir;
})();

export function issuerFor(tenantName: string): string {
  return `https://idp.${tenantName}.example/`;
}

// ---------------------------------------------------------------------------------------------
// Child processes: each in its own process group, killed by stop() or when this process ends.

export interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
  exited: Promise<void>;
  /** Set once the process has ended or could not be started at all. */
  ended?: string;
}

const liveChildren = new Set<Child>();
let exitHooksInstalled = false;

function killGroup(child: Child, signal: NodeJS.Signals): void {
  if (child.proc.pid === undefined || child.ended) return;
  try {
    process.kill(-child.proc.pid, signal);
  } catch {
    /* already gone */
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) killGroup(child, 'SIGKILL');
  });
  // Children run detached (own process group), so a Ctrl-C does not reach them: pass it on.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const child of liveChildren) killGroup(child, 'SIGTERM');
      process.removeListener(signal, onSignal);
      // Nobody else handles it: behave as if we never listened (exit with the signal).
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** Starts `command` in its own process group, output appended to `<dir>/<name>.log`. */
export function startChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, dir: string): Child {
  installExitHooks();
  const logFile = path.join(dir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(command, args, { env, detached: true, stdio: ['ignore', fd, fd] });
    // The stack never keeps this process alive by itself (a test run that forgot stop() still ends);
    // the 'exit' hook then kills the children.
    proc.unref();
  } finally {
    closeSync(fd);
  }
  const child = { name, proc, logFile } as Child;
  child.exited = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      child.ended ??= `exited (${code ?? signal})`;
      resolve();
    });
    proc.once('error', (err) => {
      child.ended ??= `could not run ${command}: ${err.message}${command === 'moto_server' ? ' (pip install "moto[server]")' : ''}`;
      resolve();
    });
  });
  liveChildren.add(child);
  void child.exited.then(() => liveChildren.delete(child));
  return child;
}

/** Sends `signal` to the child's group (SIGKILL after `graceMs`) and waits until it has gone. */
export async function stopChild(child: Child, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  killGroup(child, signal);
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
  // The leader is gone; make sure nothing else of its group lingers.
  if (child.proc.pid !== undefined) {
    try {
      process.kill(-child.proc.pid, 'SIGKILL');
    } catch {
      /* no such group: good */
    }
  }
  liveChildren.delete(child);
}

function logTail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function childFailure(child: Child, what: string): Error {
  const how = child.ended ?? 'did not become ready';
  return new Error(`${what} ${how}; last lines of ${child.logFile}:\n${logTail(child.logFile)}`);
}

// ---------------------------------------------------------------------------------------------
// Ports and readiness.

export { freePort };

function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, ''));
  return m ? { host: m[1], port: Number(m[2]) } : undefined;
}

function tcpReachable(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Retries `probe` until it returns true, the child dies, or the timeout passes. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  child?: Child,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (child?.ended) throw childFailure(child, what);
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      if (child) throw childFailure(child, `${what} (after ${timeoutMs / 1000}s)`);
      throw new Error(`${what} not ready after ${timeoutMs / 1000}s: ${String(lastError ?? 'probe kept failing')}`);
    }
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// Temporal.

function runInstall(): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = execFile(
      path.join(repoRoot, 'temporal-dev.sh'),
      ['install'],
      { timeout: INSTALL_TIMEOUT_MS, maxBuffer: 1 << 20 },
      (err, stdout) => {
        if (err) reject(new Error(`./temporal-dev.sh install failed: ${err.message}`));
        else resolve(stdout.trim());
      },
    );
    proc.stderr?.pipe(process.stderr); // silent when the CLI is already there; progress when building
  });
}

/** True when the frontend answers and every search attribute is registered in the namespace. */
async function temporalReady(address: string, namespace: string, register: boolean): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 2000 });
  try {
    return await connection.withDeadline(Date.now() + 5000, async () => {
      await connection.workflowService.getSystemInfo({});
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = Object.keys(SEARCH_ATTRIBUTES).filter((name) => !(name in (customAttributes ?? {}))) as (keyof typeof SEARCH_ATTRIBUTES)[];
      if (missing.length === 0) return true;
      if (register) {
        // A server we did not start (TEMPORAL_ADDRESS), or a db file from before an attribute was added
        // (start-dev registers --search-attribute only when it creates the db): add what is missing.
        await connection.operatorService.addSearchAttributes({
          namespace,
          searchAttributes: Object.fromEntries(missing.map((name) => [name, SEARCH_ATTRIBUTES[name]])),
        });
      }
      return false;
    });
  } finally {
    await connection.close();
  }
}

/**
 * A Temporal dev server of its own, headless, with extra dynamic config (e.g. a namespace's rate
 * limits, for a test of an overloaded Temporal). Stop it with stopChild.
 */
export async function startOwnTemporal(dir: string, dynamicConfig: Record<string, string | number>): Promise<{ address: string; child: Child }> {
  const args = Object.entries(dynamicConfig).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${value}`]);
  const { address, child } = await startTemporal(dir, undefined, undefined, true, args);
  return { address, child: child! };
}

async function startTemporal(
  dir: string,
  uiPort?: number,
  wantPort?: number,
  ownServer = false,
  extraArgs: string[] = [],
): Promise<{ address: string; child?: Child; restart?: () => Promise<Child>; dataDir?: string }> {
  const given = ownServer ? undefined : process.env.TEMPORAL_ADDRESS;
  const hostPort = given ? splitHostPort(given) : undefined;
  if (given && hostPort && (await tcpReachable(hostPort.host, hostPort.port))) {
    const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
    await waitFor(`Temporal at ${given}`, () => temporalReady(given, namespace, true), TEMPORAL_START_TIMEOUT_MS);
    console.error(`Temporal: the server at ${given} (TEMPORAL_ADDRESS), none started`);
    return { address: given };
  }
  await runInstall();
  const port = wantPort ?? (await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_PORT: String(port),
    TEMPORAL_DB_FILE: path.join(dir, 'temporal.db'),
  };
  if (process.env.TEMPORAL_PERSISTENCE === 'postgres') {
    // A folder of its own in the temp dir: as root, temporal-dev.sh hands it to the postgres user,
    // who may not enter the stack's folder.
    env.TEMPORAL_PG_DIR = mkdtempSync(path.join(os.tmpdir(), 'access-temporal-pg-'));
  }
  if (uiPort === undefined || uiPort === 0) {
    env.TEMPORAL_HEADLESS = '1';
    env.TEMPORAL_UI_PORT = '0';
  } else {
    env.TEMPORAL_HEADLESS = '0';
    env.TEMPORAL_UI_PORT = String(uiPort);
  }
  const address = `127.0.0.1:${port}`;
  const start = async (): Promise<Child> => {
    const child = startChild('temporal', path.join(repoRoot, 'temporal-dev.sh'), ['start', ...extraArgs], env, dir);
    try {
      await waitFor('Temporal', () => temporalReady(address, 'default', true), TEMPORAL_START_TIMEOUT_MS, child);
    } catch (err) {
      await stopChild(child);
      throw err;
    }
    return child;
  };
  try {
    return { address, child: await start(), restart: start, dataDir: env.TEMPORAL_PG_DIR };
  } catch (err) {
    // The caller never learns of a folder whose server did not start: remove it here.
    if (env.TEMPORAL_PG_DIR) rmSync(env.TEMPORAL_PG_DIR, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// moto.

async function motoAnswers(endpoint: string): Promise<boolean> {
  const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status < 500;
}

async function startMoto(dir: string, ownServer = false): Promise<{ endpoint: string; child?: Child }> {
  const given = ownServer ? undefined : process.env.AWS_ENDPOINT_URL;
  if (given) {
    const url = new URL(given);
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    if (await tcpReachable(url.hostname, port)) return { endpoint: given.replace(/\/+$/, '') };
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = startChild('moto', 'moto_server', ['-H', '127.0.0.1', '-p', String(port)], process.env, dir);
  try {
    await waitFor('moto_server', () => motoAnswers(endpoint), MOTO_START_TIMEOUT_MS, child);
    // Fixed ids (instance ARN, identity store id, user ids) for a fresh moto. Never re-seed a shared
    // moto: its random sequence would restart and hand out ids that already exist.
    const res = await fetch(`${endpoint}/moto-api/seed?a=42`, { method: 'POST' });
    if (!res.ok) throw new Error(`moto seed: HTTP ${res.status}`);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { endpoint, child };
}

/** SDK client settings for the emulated AWS (moto). */
export function awsClientConfig(endpoint: string) {
  return { region: AWS_REGION, endpoint, credentials: AWS_CREDENTIALS };
}

function namesFromEmail(email: string): { GivenName: string; FamilyName: string } {
  const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
  const parts = email.split('@')[0].split(/[._+-]+/).filter(Boolean).map(cap);
  return { GivenName: parts[0] ?? 'User', FamilyName: parts.slice(1).join(' ') || 'User' };
}

/**
 * Each tenant's instance ARN: moto's own (one per account and region) for the tenants that share
 * it, and for every other tenant one of its own, which moto keeps apart by its ARN alone.
 */
function instanceArns(tenants: StackTenant[], motoInstanceArn: string): Map<string, string> {
  const sharing = tenants.some((t) => t.sharesInstance);
  return new Map(
    tenants.map((t, i) => {
      const moto = sharing ? t.sharesInstance : i === 0;
      return [t.id.toLowerCase(), moto ? motoInstanceArn : `arn:aws:sso:::instance/ssoins-${t.id.toLowerCase().replace(/-/g, '').slice(-16)}`];
    }),
  );
}

async function seedAws(
  endpoint: string,
  tenants: StackTenant[],
  users: string[],
  permissionSets: string[],
): Promise<{ instanceArnOf: Map<string, string>; identityStoreId: string }> {
  const sso = new SSOAdminClient(awsClientConfig(endpoint));
  const ids = new IdentitystoreClient(awsClientConfig(endpoint));
  try {
    const { Instances } = await sso.send(new ListInstancesCommand({}));
    const instance = Instances?.[0];
    if (!instance?.InstanceArn || !instance.IdentityStoreId) throw new Error(`no IAM Identity Center instance at ${endpoint}`);
    const instanceArn = instance.InstanceArn;
    const identityStoreId = instance.IdentityStoreId;

    for (const email of users) {
      const name = namesFromEmail(email);
      try {
        await ids.send(
          new CreateUserCommand({
            IdentityStoreId: identityStoreId,
            UserName: email,
            DisplayName: `${name.GivenName} ${name.FamilyName}`,
            Name: name,
            Emails: [{ Value: email, Primary: true, Type: 'work' }],
          }),
        );
      } catch (err) {
        if (!(err instanceof ConflictException)) throw err; // already there (shared moto)
      }
    }

    const instanceArnOf = instanceArns(tenants, instanceArn);
    for (const arn of new Set(instanceArnOf.values())) {
      const existing = new Set<string>();
      for await (const page of paginateListPermissionSets({ client: sso }, { InstanceArn: arn })) {
        for (const psArn of page.PermissionSets ?? []) {
          const { PermissionSet } = await sso.send(new DescribePermissionSetCommand({ InstanceArn: arn, PermissionSetArn: psArn }));
          if (PermissionSet?.Name) existing.add(PermissionSet.Name);
        }
      }
      for (const name of permissionSets.filter((n) => !existing.has(n))) {
        await sso.send(new CreatePermissionSetCommand({ InstanceArn: arn, Name: name, Description: `${name} (local stack)` }));
      }
    }
    return { instanceArnOf, identityStoreId };
  } finally {
    sso.destroy();
    ids.destroy();
  }
}

/** The audit bucket, with Object Lock on (as start-up requires for object_lock_days); kept if it exists. */
async function createAuditBucket(endpoint: string): Promise<void> {
  const s3 = new S3Client({ ...awsClientConfig(endpoint), forcePathStyle: true });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: AUDIT_BUCKET, ObjectLockEnabledForBucket: true }));
    await s3.send(new PutObjectLockConfigurationCommand({ Bucket: AUDIT_BUCKET, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }));
  } catch (err) {
    if (!(err instanceof S3ServiceException && ['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes(err.name))) throw err;
  } finally {
    s3.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Keys and config.

interface TenantKey {
  issuer: string;
  audience: string;
  kid: string;
  privateKey: CryptoKey;
}

/** Loads `<dir>/<id>.private.jwk.json` or makes a new key; (re)writes `<dir>/<id>.jwks.json`. */
async function tenantKey(dir: string, tenant: StackTenant): Promise<TenantKey & { privateJwk: JWK; jwksFile: string }> {
  const id = tenant.id.toLowerCase();
  const privateFile = path.join(dir, `${id}.private.jwk.json`);
  const jwksFile = path.join(dir, `${id}.jwks.json`);
  let privateJwk: JWK;
  if (existsSync(privateFile)) {
    privateJwk = JSON.parse(readFileSync(privateFile, 'utf8')) as JWK;
  } else {
    const pair = await generateKeyPair(JWT_ALG, { extractable: true });
    privateJwk = await exportJWK(pair.privateKey);
    privateJwk.kid = await calculateJwkThumbprint(privateJwk);
    privateJwk.alg = JWT_ALG;
    privateJwk.use = 'sig';
    writeFileSync(privateFile, JSON.stringify(privateJwk, null, 2) + '\n', { mode: 0o600 });
  }
  const { d: _private, ...publicJwk } = privateJwk;
  const kid = privateJwk.kid ?? (await calculateJwkThumbprint(publicJwk));
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...publicJwk, kid, alg: JWT_ALG, use: 'sig' }] }, null, 2) + '\n');
  const privateKey = (await importJWK({ ...privateJwk, alg: JWT_ALG }, JWT_ALG)) as CryptoKey;
  return { issuer: issuerFor(tenant.name), audience: TOKEN_AUDIENCE, kid, privateKey, privateJwk: { ...privateJwk, kid, alg: JWT_ALG }, jwksFile };
}

function writeConfig(
  file: string,
  tenants: StackTenant[],
  keys: Map<string, { jwksFile: string }>,
  providers: Map<string, IdentityProvider>,
  aws: { endpoint: string; instanceArnOf: Map<string, string>; identityStoreId: string },
): void {
  const authOf = (t: StackTenant) => {
    const idp = providers.get(t.id.toLowerCase());
    if (!idp) {
      const oidc = t.oidcClientId ? { oidc: { client_id: t.oidcClientId } } : {};
      return { issuer: issuerFor(t.name), audience: TOKEN_AUDIENCE, jwks_file: keys.get(t.id.toLowerCase())!.jwksFile, ...oidc };
    }
    return {
      issuer: idp.issuer,
      audience: SIGN_IN_AUDIENCE,
      jwks_url: idp.jwksUrl,
      oidc: { client_id: idp.clientId, scopes: idp.scopes, resource: SIGN_IN_AUDIENCE, console: { client_id: CONSOLE_CLIENT_ID, client_secret_env: consoleSecretEnv(t.id) } },
    };
  };
  const config = {
    tenants: tenants.map((t) => ({
      id: t.id,
      name: t.name,
      auth: authOf(t),
      aws: {
        region: AWS_REGION,
        sso_instance_arn: aws.instanceArnOf.get(t.id.toLowerCase()),
        identity_store_id: aws.identityStoreId,
        endpoint: t.awsEndpoint ?? aws.endpoint,
        ...(t.revokeSessions && { revoke_sessions: true }),
      },
      policies: t.policies ?? path.join(repoRoot, 'policies'),
      ...(t.grants ? { grants: t.grants } : {}),
      ...(t.accounts ? { accounts: t.accounts } : {}),
      ...(t.accounts_only !== undefined ? { accounts_only: t.accounts_only } : {}),
      ...(t.organization ? { organization: t.organization() } : {}),
      ...(t.groups ? { groups: t.groups() } : {}),
      ...(t.oncall ? { oncall: t.oncall } : {}),
      ...(t.tickets ? { tickets: t.tickets } : {}),
      ...(t.notifications ? { notifications: t.notifications } : {}),
      audit: { s3: { bucket: AUDIT_BUCKET, prefix: AUDIT_PREFIX, region: AWS_REGION, endpoint: t.auditEndpoint ?? aws.endpoint, object_lock_days: AUDIT_LOCK_DAYS } },
    })),
  };
  writeFileSync(file, '# Written by scripts/stack.ts\n' + toYaml(config));
}

// ---------------------------------------------------------------------------------------------

export async function startStack(opts: StackOptions): Promise<Stack> {
  if (opts.tenants.length === 0) throw new Error('startStack: give at least one tenant');
  const dir = path.resolve(opts.dir);
  mkdirSync(dir, { recursive: true });

  const started: Child[] = [];
  const stopProviders: IdentityProvider[] = [];
  let temporalData: string | undefined; // PostgreSQL's folder: hundreds of MB, not kept after the stack
  const stop = async (): Promise<void> => {
    const children = started.splice(0);
    await Promise.all([...children.map((c) => stopChild(c)), ...stopProviders.splice(0).map((p) => p.stop())]);
    if (temporalData) rmSync(temporalData, { recursive: true, force: true });
  };

  try {
    // Keys while the servers boot; wait for all three so a failure never leaves a child unstopped.
    const [keysR, motoR, temporalR] = await Promise.allSettled([
      Promise.all(opts.tenants.map((t) => tenantKey(dir, t))),
      startMoto(dir, opts.ownServers),
      startTemporal(dir, opts.temporalUiPort, opts.temporalPort, opts.ownServers),
    ]);
    if (motoR.status === 'fulfilled' && motoR.value.child) started.push(motoR.value.child);
    if (temporalR.status === 'fulfilled' && temporalR.value.child) started.push(temporalR.value.child);
    if (temporalR.status === 'fulfilled') temporalData = temporalR.value.dataDir;
    for (const r of [keysR, motoR, temporalR]) if (r.status === 'rejected') throw r.reason;
    const keys = (keysR as PromiseFulfilledResult<Awaited<ReturnType<typeof tenantKey>>[]>).value;
    const moto = (motoR as PromiseFulfilledResult<Awaited<ReturnType<typeof startMoto>>>).value;
    const temporal = (temporalR as PromiseFulfilledResult<Awaited<ReturnType<typeof startTemporal>>>).value;

    const [aws] = await Promise.all([seedAws(moto.endpoint, opts.tenants, opts.users, opts.permissionSets), createAuditBucket(moto.endpoint)]);
    await opts.beforeConfig?.(moto.endpoint);
    const keyByTenant = new Map(opts.tenants.map((t, i) => [t.id.toLowerCase(), keys[i]]));
    const providers = new Map<string, IdentityProvider>();
    for (const t of opts.tenants.filter((t) => t.identityProvider)) {
      const key = keyByTenant.get(t.id.toLowerCase())!;
      const { port, people, accessTokenSeconds } = t.identityProvider!;
      // The console's client secret reaches the API as a deployment's would: by the environment.
      const consoleClient = { clientId: CONSOLE_CLIENT_ID, clientSecret: randomBytes(24).toString('base64url'), redirectUris: [`http://127.0.0.1/t/${t.id.toLowerCase()}/callback`] };
      process.env[consoleSecretEnv(t.id)] = consoleClient.clientSecret;
      const idp = await startIdentityProvider({ port, people, accessTokenSeconds, signingKey: key.privateJwk, audience: SIGN_IN_AUDIENCE, console: consoleClient });
      stopProviders.push(idp);
      providers.set(t.id.toLowerCase(), idp);
      // Tokens the stack signs for the tenant come from the same issuer as those people sign in for.
      key.issuer = idp.issuer;
      key.audience = SIGN_IN_AUDIENCE;
    }
    const configPath = path.join(dir, 'access.yaml');
    writeConfig(configPath, opts.tenants, keyByTenant, providers, { endpoint: moto.endpoint, ...aws });
    loadConfig(configPath); // throws, naming the field, if the file is not what the service accepts

    let temporalChild = temporal.child;
    const ownTemporal = (): Child => {
      if (!temporal.restart) throw new Error(`the stack did not start the Temporal at ${temporal.address}`);
      return temporalChild!;
    };

    return {
      temporalAddress: temporal.address,
      temporalDataDir: temporal.dataDir,
      awsEndpoint: moto.endpoint,
      configPath,
      instanceArn: aws.instanceArnOf.get(opts.tenants[0].id.toLowerCase())!,
      instanceArnOf(tenantId) {
        const arn = aws.instanceArnOf.get(tenantId.toLowerCase());
        if (!arn) throw new Error(`instanceArnOf: unknown tenant ${tenantId}`);
        return arn;
      },
      identityStoreId: aws.identityStoreId,
      async issueToken(tenantId, claims, tokenOpts = {}) {
        const key = keyByTenant.get(tenantId.toLowerCase());
        if (!key) throw new Error(`issueToken: unknown tenant ${tenantId}`);
        const payload: Record<string, unknown> = {};
        if (claims.email !== undefined) payload.email = claims.email;
        if (claims.groups !== undefined) payload.groups = claims.groups;
        if (claims.email_verified !== undefined) payload.email_verified = claims.email_verified;
        const now = Math.floor(Date.now() / 1000);
        const expiresIn = tokenOpts.expiresIn ?? '1h';
        const jwt = new SignJWT(payload)
          .setProtectedHeader({ alg: JWT_ALG, kid: key.kid, typ: 'JWT' })
          .setIssuer(key.issuer)
          .setAudience(key.audience)
          .setSubject(claims.sub)
          .setIssuedAt(now)
          .setExpirationTime(typeof expiresIn === 'number' ? now + expiresIn : expiresIn);
        if (tokenOpts.notBefore !== undefined) jwt.setNotBefore(tokenOpts.notBefore);
        return jwt.sign(key.privateKey);
      },
      identityProviderOf: (tenantId) => providers.get(tenantId.toLowerCase()),
      async stopTemporal(signal = 'SIGTERM') {
        const child = ownTemporal();
        await stopChild(child, 10_000, signal);
        if (started.includes(child)) started.splice(started.indexOf(child), 1);
      },
      async startTemporal() {
        if (!ownTemporal().ended) throw new Error('Temporal is still running');
        temporalChild = await temporal.restart!();
        started.push(temporalChild);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface LocalServices {
  /** http://127.0.0.1:port of the API */
  baseUrl: string;
  worker: Worker;
  workerMetrics: WorkerMetrics;
  /** The API's connection to Temporal, for a client of the test's own. */
  connection: Connection;
  stop(): Promise<void>;
}

/** A worker and the API in this process, on the stack's Temporal, with `config`'s tenants. */
export async function startLocalServices(stack: Stack, config: AppConfig, logger?: Logger): Promise<LocalServices> {
  const workerConnection = await NativeConnection.connect({ address: stack.temporalAddress });
  const workerMetrics = createWorkerMetrics();
  const worker = await createWorker(config, workerConnection, workerMetrics);
  const running = worker.run();
  const connection = connectApi(stack.temporalAddress);
  const server: Server = await new Promise((resolve) => {
    const s = createApi(config, connection, logger).listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    worker,
    workerMetrics,
    connection,
    async stop() {
      await new Promise((resolve) => server.close(resolve));
      worker.shutdown();
      await running;
      await workerConnection.close();
      await connection.close();
    },
  };
}
