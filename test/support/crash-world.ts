// A stack of its own for crash tests: a Temporal and a moto started here (so they can be stopped
// and restarted), the worker and the API as child processes on a task queue of their own, and
// between the worker and moto a proxy that can hold back one response, after moto has acted on
// the request, so the worker can be killed at exactly that moment.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DescribePermissionSetCommand, ListAccountAssignmentsCommand, ListPermissionSetsCommand, SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { CreateGroupCommand, GetUserIdCommand, IdentitystoreClient, ListGroupMembershipsForMemberCommand } from '@aws-sdk/client-identitystore';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { type GrantState, type GrantView, grantWorkflowId } from '../../src/domain/grant';
import { grantStateQuery } from '../../src/workflows/messages';
import { awsClientConfig, repoRoot, type Stack, startStack } from '../../scripts/stack';
import { apiProcess, type ServiceProcess, workerProcess } from './processes';
import { assertEngine, claimedStore, engineOf } from './engine';

export const CRASH_TENANT = { id: '3c9a1f52-7d4e-4b8a-9f10-2e6d5c4b3a21', name: 'crash' };
const ALICE = { sub: 'alice', email: 'alice@example.com', groups: ['engineering'] };
export const ROLE = 'ReadOnlyAccess';
/** The grantable group of a crash world made with `group: true` (issue 39 §3). */
export const CRASH_GROUP = 'crash-admins';
const GROUP_TARGET = `AWS::IdentityStore::Group::${CRASH_GROUP}`;

/** Holds back the next response to one of the named operations; passes everything else through. */
class HoldingProxy {
  private waiting?: { operations: string[]; resolve: (operation: string) => void };
  private held: http.ServerResponse[] = [];
  readonly url: string;
  /** Calls that reached it, by operation. */
  readonly calls = new Map<string, number>();

  private constructor(
    private readonly server: http.Server,
    upstream: string,
  ) {
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    server.on('request', (req, res) => {
      const operation = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '';
      this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
      const forward = http.request(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const waiting = this.waiting;
          if (waiting?.operations.includes(operation)) {
            this.waiting = undefined;
            this.held.push(res);
            waiting.resolve(operation);
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(chunks));
        });
      });
      forward.on('error', () => res.destroy());
      res.on('error', () => undefined); // the caller may have been killed
      req.pipe(forward);
    });
  }

  static async start(upstream: string): Promise<HoldingProxy> {
    const server = http.createServer({ keepAlive: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new HoldingProxy(server, upstream);
  }

  /** Resolves once moto has answered a call to one of `operations` and that answer is held. */
  holdNext(operations: string[], timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`no ${operations.join('/')} call within ${timeoutMs / 1000}s`));
      }, timeoutMs);
      this.waiting = {
        operations,
        resolve: (operation) => {
          clearTimeout(timer);
          resolve(operation);
        },
      };
    });
  }

  /** Drops the held responses: their callers are gone. */
  dropHeld(): void {
    for (const res of this.held.splice(0)) res.destroy();
  }

  async stop(): Promise<void> {
    this.waiting = undefined;
    this.dropHeld();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface CrashWorld {
  stack: Stack;
  worker: ServiceProcess;
  api: ServiceProcess & { url: string };
  temporal: Client;
  /** A new account id, so each grant of a suite is its own. */
  freshAccount(): string;
  /** POST /v1/access/ensure as alice (`extra`: more top-level fields, e.g. starts_at); throws when the API does not answer. */
  ensure(account: string, durationSeconds: number, extra?: Record<string, unknown>): Promise<Reply<{ grants: GrantView[] }>>;
  /** GET /v1/access/grants{suffix} as alice. */
  get<T = any>(suffix: string): Promise<Reply<T>>;
  /** alice's assignments of ROLE on `account`, as moto holds them (read past the proxy). */
  assignments(account: string): Promise<number>;
  /** The id of the grant workflow of alice's ROLE on `account`. */
  workflowId(account: string): string;
  /** The worker's calls to AWS so far, by operation (counted at the proxy between it and moto). */
  awsCalls(): Record<string, number>;
  /** The grant workflow's state, from the workflow itself (needs a worker); null before its first run. */
  state(account: string): Promise<GrantState | null>;
  /**
   * Where the grant's run stands, for a failure message: its status, pending workflow task, and
   * each event of its history with its time (and a workflow task's queue, sticky or not).
   */
  whereIs(account: string): Promise<string>;
  /**
   * Waits until moto has answered one of `operations` for the worker, then SIGKILLs the worker
   * before the answer reaches it. Returns the operation.
   */
  killWorkerDuring(operations: string[], timeoutMs?: number): Promise<string>;
  /** With `group: true`: POST /v1/access/ensure as alice for membership of CRASH_GROUP. */
  ensureGroup(durationSeconds: number): Promise<Reply<{ grants: GrantView[] }>>;
  /** alice's memberships of CRASH_GROUP, as moto holds them (read past the proxy). */
  memberships(): Promise<number>;
  /** The group grant's state, from its workflow; null before its first run. */
  groupState(): Promise<GrantState | null>;
  stop(): Promise<void>;
}

export async function startCrashWorld(
  name: string,
  grants: { max_duration_seconds?: number } = {},
  /** Accounts the tenant lists (its only targets), permission sets made besides ROLE, and the Schedule's reconciliation interval. */
  { accounts, permissionSets = [], reconcileIntervalSeconds, group = false }: { accounts?: string[]; permissionSets?: string[]; reconcileIntervalSeconds?: number; group?: boolean } = {},
): Promise<CrashWorld> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `access-${name}-`));
  // With a group: the shipped policies, and alice may have the group's membership at once.
  const policies = path.join(dir, 'policies');
  if (group) {
    cpSync(path.join(repoRoot, 'policies'), policies, { recursive: true });
    writeFileSync(
      path.join(policies, 'crash-group.cedar'),
      '@id("crash-group")\npermit (principal, action in [Action::"request", Action::"activate"], resource is AWS::IdentityStoreGroup) when { context.role == "member" };\n',
    );
  }
  const stack = await startStack({
    dir,
    ownServers: true,
    // The suites drive thousands of ensures as alice: far above the per-principal defaults.
    tenants: [
      {
        ...CRASH_TENANT,
        grants: { max_open_per_principal: 100_000, ensure_rate_per_minute: 1_000_000, ensure_burst: 100_000, read_rate_per_minute: 1_000_000, read_burst: 100_000, ...grants },
        ...(accounts && { accounts_only: true, accounts: Object.fromEntries(accounts.map((a) => [a, { environment: 'staging' }])) }),
        ...(group && { policies, groups: () => [{ name: CRASH_GROUP }] }),
      },
    ],
    users: [ALICE.email],
    permissionSets: [ROLE, ...permissionSets],
  });
  const stops: (() => Promise<void>)[] = [() => stack.stop()];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    const proxy = await HoldingProxy.start(stack.awsEndpoint);
    stops.push(() => proxy.stop());
    // The worker reaches moto through the proxy; the API never calls AWS.
    const config = parseYaml(readFileSync(stack.configPath, 'utf8'));
    for (const tenant of config.tenants) {
      tenant.aws.endpoint = proxy.url;
      if (reconcileIntervalSeconds !== undefined) tenant.reconcile_interval_seconds = reconcileIntervalSeconds;
    }
    const workerConfig = path.join(dir, 'worker.yaml');
    writeFileSync(workerConfig, toYaml(config));

    const taskQueue = `access-grants-${name}`;
    const settings = { dir, temporalAddress: stack.temporalAddress, taskQueue };
    const worker = await workerProcess({ ...settings, configPath: workerConfig });
    stops.push(() => worker.stop());
    const api = await apiProcess({ ...settings, configPath: stack.configPath });
    stops.push(() => api.stop());
    await Promise.all([worker.start(), api.start()]);

    const connection = await Connection.connect({ address: stack.temporalAddress });
    stops.push(() => connection.close());
    // A server of its own, on the engine the run claims (test/reliability/engine.test.ts).
    assertEngine(await engineOf(connection), claimedStore(true), `${name}'s stack`);
    const temporal = new Client({ connection });
    const sso = new SSOAdminClient(awsClientConfig(stack.awsEndpoint));
    const identity = new IdentitystoreClient(awsClientConfig(stack.awsEndpoint));
    stops.push(async () => {
      sso.destroy();
      identity.destroy();
    });
    const { UserId: userId } = await identity.send(
      new GetUserIdCommand({
        IdentityStoreId: stack.identityStoreId,
        AlternateIdentifier: { UniqueAttribute: { AttributePath: 'userName', AttributeValue: ALICE.email } },
      }),
    );
    const { PermissionSets = [] } = await sso.send(new ListPermissionSetsCommand({ InstanceArn: stack.instanceArn }));
    let permissionSetArn = '';
    for (const arn of PermissionSets) {
      const { PermissionSet } = await sso.send(new DescribePermissionSetCommand({ InstanceArn: stack.instanceArn, PermissionSetArn: arn }));
      if (PermissionSet?.Name === ROLE) permissionSetArn = arn;
    }

    const groupId = group ? (await identity.send(new CreateGroupCommand({ IdentityStoreId: stack.identityStoreId, DisplayName: CRASH_GROUP }))).GroupId! : '';
    const groupWorkflowId = grantWorkflowId({ tenantId: CRASH_TENANT.id, principalId: ALICE.sub, target: GROUP_TARGET, role: 'member' });
    const token = await stack.issueToken(CRASH_TENANT.id, ALICE, { expiresIn: '12h' });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-tenant-id': CRASH_TENANT.id };
    let accountSeq = 0;
    const workflowId = (account: string) =>
      grantWorkflowId({ tenantId: CRASH_TENANT.id, principalId: ALICE.sub, target: `AWS::Account::${account}`, role: ROLE });

    return {
      stack,
      worker,
      api,
      temporal,
      freshAccount() {
        accountSeq += 1;
        return `3${String(process.pid % 100000).padStart(5, '0')}${String(accountSeq).padStart(6, '0')}`;
      },
      async ensure(account, durationSeconds, extra = {}) {
        const res = await fetch(`${api.url}/v1/access/ensure`, {
          method: 'POST',
          headers,
          body: JSON.stringify({
            entitlements: [{ target: `AWS::Account::${account}`, role: ROLE, duration_seconds: durationSeconds }],
            justification: { reason: 'crash test' },
            ...extra,
          }),
        });
        return { status: res.status, body: (await res.json()) as any, headers: res.headers };
      },
      async get(suffix) {
        const res = await fetch(`${api.url}/v1/access/grants${suffix}`, { headers });
        return { status: res.status, body: (await res.json()) as any, headers: res.headers };
      },
      async assignments(account) {
        const listed = await sso.send(
          new ListAccountAssignmentsCommand({ InstanceArn: stack.instanceArn, AccountId: account, PermissionSetArn: permissionSetArn }),
        );
        return (listed.AccountAssignments ?? []).filter((a) => a.PrincipalType === 'USER' && a.PrincipalId === userId).length;
      },
      workflowId,
      awsCalls: () => Object.fromEntries(proxy.calls),
      async state(account) {
        try {
          return await temporal.workflow.getHandle(workflowId(account)).query(grantStateQuery);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return null;
          throw err;
        }
      },
      async whereIs(account) {
        try {
          const handle = temporal.workflow.getHandle(workflowId(account));
          const [{ status, raw }, history] = await Promise.all([handle.describe(), handle.fetchHistory()]);
          const task = raw.pendingWorkflowTask;
          const lines = (history.events ?? []).map((e) => {
            const kind = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as any)[k]) ?? '?';
            const queue = e.workflowTaskScheduledEventAttributes?.taskQueue;
            const at = new Date(Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6)).toISOString();
            return `  ${e.eventId} ${at} ${kind.replace(/EventAttributes$/, '')}${queue ? ` (${queue.name}, kind ${queue.kind})` : ''}`;
          });
          const pending = task ? `pending workflow task: state ${task.state}, attempt ${task.attempt}, scheduled ${task.scheduledTime?.seconds}` : 'no pending workflow task';
          return [`run ${raw.workflowExecutionInfo?.execution?.runId}: ${status.name}; ${pending}`, ...lines].join('\n');
        } catch (err) {
          return `no description: ${(err as Error).message}`;
        }
      },
      async killWorkerDuring(operations, timeoutMs = 120_000) {
        const operation = await proxy.holdNext(operations, timeoutMs);
        await worker.kill();
        proxy.dropHeld();
        return operation;
      },
      async ensureGroup(durationSeconds) {
        const res = await fetch(`${api.url}/v1/access/ensure`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ entitlements: [{ target: GROUP_TARGET, role: 'member', duration_seconds: durationSeconds }], justification: { reason: 'crash test' } }),
        });
        return { status: res.status, body: (await res.json()) as any, headers: res.headers };
      },
      async memberships() {
        const { GroupMemberships = [] } = await identity.send(new ListGroupMembershipsForMemberCommand({ IdentityStoreId: stack.identityStoreId, MemberId: { UserId: userId! } }));
        return GroupMemberships.filter((m) => m.GroupId === groupId).length;
      },
      async groupState() {
        try {
          return await temporal.workflow.getHandle(groupWorkflowId).query(grantStateQuery);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return null;
          throw err;
        }
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
