// Grant runs as the service reads them from Temporal, and the policy decisions made on them:
// what the ensure, request and grant services share.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { LRUCache } from 'lru-cache';
import { defaultPayloadConverter, WorkflowNotFoundError } from '@temporalio/common';
import { decodeOptionalSinglePayload } from '@temporalio/common/lib/internal-non-workflow';
import { env, type TenantConfig } from '../config';
import { type AccountFacts, accountFacts, type OrganizationReport, policyResourceOf } from '../domain/accounts';
import { accountIdOf, type GrantKey, grantName, type GrantState, grantWorkflowId, type Principal } from '../domain/grant';
import { AccessError } from '../domain/errors';
import type { PolicyAction, PolicyDecision, PolicyRequest, PolicySet } from '../policy';
import { askedByGrant, policyContext } from '../policy/context';
import { GRANT_MEMO, grantStateQuery, searchAttributes } from '../workflows/messages';
import type { reconcileWorkflow } from '../workflows/reconcile';
import type { PermissionSetSummary } from '../activities/reconcile';
import { OrganizationMaps } from '../latest-run';
import { latestResult, reconcileScheduleId } from '../schedules';
import type { CallRates } from './rate-limit';

export interface Caller {
  tenant: TenantConfig;
  principal: Principal;
  /** The token says its email is not verified (email_verified: false): it finds nobody in an outside source (issue 40). */
  emailUnverified?: boolean;
}

/** A grant run as visibility lists it: its grant's state from the run's memo. */
export interface GrantRow {
  workflowId: string;
  runId: string;
  state: GrantState;
  /** Its AccessAwaitingReview attribute: what a queue of pending requests is listed by. */
  awaitingReview: boolean;
}

/** The permission sets of a tenant's instance, as its latest completed reconciliation round read them. */
export interface PermissionSetCatalogue {
  /** Session durations in seconds, by name: what policies see as session_duration_seconds. */
  sessionSeconds: Record<string, number>;
  /** Names and descriptions, by name: the roles a caller may be offered. */
  sets: PermissionSetSummary[];
}

/** Visibility is eventually consistent: a grant made a moment ago may take this long to be listed. */
export const VISIBILITY_WAIT_MS = 5000;

/** Empty visibility pages one listing call reads past before it answers an empty page with a cursor. */
const EMPTY_PAGES_PER_CALL = 4;

/** How long the permission sets' session durations are kept (found; none found yet: much shorter). */
const SESSION_DURATIONS_TTL_MS = 60_000;
const NO_SESSION_DURATIONS_TTL_MS = 5_000;

/** Until a tenant's organisation has been read once, the API looks this often (else env.organizationCheckMs). */
const NO_ORGANIZATION_CHECK_MS = 5_000;

export class GrantRuns {
  private readonly catalogues = new Map<string, { until: number; value: Promise<PermissionSetCatalogue> }>();
  /**
   * Each organisation tenant's latest completed read (organizationWorkflow): the map decisions read
   * synchronously, so a Cedar decision never waits on AWS or Temporal. One map per tenant, replaced
   * whole by a newer read (about 3 MB at 10,000 accounts).
   */
  private readonly organizations = new OrganizationMaps(
    () => this.client,
    (holding) => (holding ? env.organizationCheckMs : Math.min(env.organizationCheckMs, NO_ORGANIZATION_CHECK_MS)),
  );
  /**
   * Grant workflows this process sent a change to, for as long as visibility may lag it: a read of
   * one of them reads its run, so whoever changed it through this API reads the change back.
   */
  private readonly changed = new LRUCache<string, true>({ max: 100_000, ttl: VISIBILITY_WAIT_MS });
  /**
   * Grant and request ids this process gave out or changed, with when: only these are looked for
   * again while visibility may lag (whenVisible). Any other id costs one visibility call, so no
   * caller can make the API poll on an id of their own making.
   */
  private readonly issued = new LRUCache<string, number>({ max: 100_000, ttl: VISIBILITY_WAIT_MS });

  constructor(
    readonly client: Client,
    private readonly policies: ReadonlyMap<string, PolicySet>,
    /** Signs cursors (cursorKeyOf): every API process of a deployment has the same. */
    readonly cursorKey: Buffer,
    /** The callers' read buckets: each look for an id after the first is one more read. */
    private readonly rates: CallRates,
    /** The tenants whose config names an organization: their accounts come from its latest read. */
    private readonly organizationTenants: ReadonlySet<string> = new Set(),
  ) {}

  /**
   * The tenant's permission sets' session durations in seconds, by name, as its latest completed
   * reconciliation round read them (the API never calls AWS itself: the worker does). Empty until
   * a round has completed, or when none can be read.
   */
  async sessionSeconds(tenantId: string): Promise<Record<string, number>> {
    return (await this.permissionSets(tenantId)).sessionSeconds;
  }

  /**
   * The tenant's permission sets as its latest completed reconciliation round read them from IAM
   * Identity Center: their names and descriptions (the roles the API lists) and session durations
   * (what policies see). One read of the round's report serves both; kept SESSION_DURATIONS_TTL_MS.
   */
  async permissionSets(tenantId: string): Promise<PermissionSetCatalogue> {
    // Every decision is made after this: the organisation's accounts are loaded with it (see accountOf).
    const [catalogue] = await Promise.all([this.catalogue(tenantId), this.loadOrganization(tenantId)]);
    return catalogue;
  }

  private catalogue(tenantId: string): Promise<PermissionSetCatalogue> {
    const cached = this.catalogues.get(tenantId);
    if (cached && cached.until > Date.now()) return cached.value;
    const entry = { until: Date.now() + SESSION_DURATIONS_TTL_MS, value: this.readPermissionSets(tenantId) };
    entry.value.then(
      (v) => Object.keys(v.sessionSeconds).length === 0 && (entry.until = Date.now() + NO_SESSION_DURATIONS_TTL_MS),
      // Temporal could not be asked: the next call asks again.
      () => this.catalogues.get(tenantId) === entry && this.catalogues.delete(tenantId),
    );
    this.catalogues.set(tenantId, entry);
    return entry.value;
  }

  private async readPermissionSets(tenantId: string): Promise<PermissionSetCatalogue> {
    try {
      // No Schedule (yet), or a run that is gone: not known (latestResult passes anything else up).
      const latest = await latestResult<Awaited<ReturnType<typeof reconcileWorkflow>>>(this.client, reconcileScheduleId(tenantId));
      if (latest) {
        const report = await latest.result();
        // A report from before permissionSets names them by their session durations (without descriptions).
        const sets = report.permissionSets ?? Object.keys(report.sessionSeconds ?? {}).sort().map((name) => ({ name, description: '' }));
        return { sessionSeconds: report.sessionSeconds ?? {}, sets };
      }
    } catch (err) {
      // A run removed between the listing and the read: not known either.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    return { sessionSeconds: {}, sets: [] };
  }

  /** Brings the tenant's organisation map up to the latest completed read (see OrganizationMaps). */
  private loadOrganization(tenantId: string): Promise<void> {
    return this.organizationTenants.has(tenantId) ? this.organizations.refresh(tenantId) : Promise.resolve();
  }

  /** The tenant's latest organisation read this process holds (undefined: none yet, or the tenant names no organization). */
  organization(tenantId: string): OrganizationReport | undefined {
    return this.organizations.get(tenantId);
  }

  /** What policies see of the account, from the config and the organisation map held (never waits). */
  accountOf(tenant: TenantConfig, accountId: string): AccountFacts {
    return accountFacts(tenant, accountId, this.organization(tenant.id));
  }

  /** Marks the grant workflow, and the grant and request ids it gives out or changes, as this process's now (see `changed`, `issued`). */
  changing(workflowId: string, ...ids: (string | null | undefined)[]): void {
    this.changed.set(workflowId, true);
    const now = Date.now();
    for (const id of ids) if (id) this.issued.set(id, now);
  }

  /**
   * Asks `find` about `id` once; asks again until VISIBILITY_WAIT_MS after this process gave the id
   * out or changed its grant, since visibility may not list that yet, each time as one more of the
   * caller's reads (429 past their rate). Any other id, unknown or not, is answered at once.
   */
  async whenVisible<T>(caller: Caller, id: string, find: () => Promise<T | undefined>): Promise<T | undefined> {
    const deadline = (this.issued.get(id) ?? 0) + VISIBILITY_WAIT_MS;
    for (;;) {
      const found = await find();
      if (found !== undefined || Date.now() >= deadline) return found;
      await pause(250);
      this.rates.take(caller, 'read');
    }
  }

  /**
   * The state a read answers with: visibility's, but the run's own when this process changed it
   * within visibility's lag. A write (a review, a revoke) decides on `latestState` instead.
   */
  readState(row: GrantRow): Promise<GrantState> | GrantState {
    return this.changed.has(row.workflowId) ? this.latestState(row.state) : row.state;
  }

  /** The caller's `action` on the entitlement of `key`, in the context policyContext made. */
  decide({ tenant, principal }: Caller, action: PolicyAction, key: GrantKey, context: PolicyRequest['context']): PolicyDecision {
    return this.policySet(tenant).authorize({ principal, action, ...policyResourceOf(tenant, key.target, this.organization(tenant.id)), context });
  }

  policySet(tenant: TenantConfig): PolicySet {
    const set = this.policies.get(tenant.id);
    if (!set) throw new Error(`no policies loaded for tenant ${tenant.id}`);
    return set;
  }

  /** Every one of the tenant's grant runs matching every clause, latest first. */
  async all(tenant: TenantConfig, clauses: string[]): Promise<GrantRow[]> {
    const query = runsQuery(tenant, clauses);
    const rows: GrantRow[] = [];
    let token: Uint8Array | undefined;
    do {
      const page = await this.read(query, 100, token);
      rows.push(...page.rows);
      token = page.next;
    } while (token);
    return rows;
  }

  /**
   * One page of what the tenant's grant runs matching every clause hold (`expand` turns rows into
   * items: a grant each, or the requests first listed there), latest first, at most `limit`, and
   * the cursor of the next page (null after the last). A cursor is Temporal's own page token, tied
   * to the query it pages through, with how many of that page's items were already answered.
   */
  async page<T>(
    tenant: TenantConfig,
    clauses: string[],
    limit: number,
    cursor: string | undefined,
    expand: (rows: GrantRow[]) => Promise<T[]> | T[],
  ): Promise<{ items: T[]; nextCursor: string | null }> {
    const query = runsQuery(tenant, clauses);
    let at: PagePosition = cursor === undefined ? { skip: 0 } : positionOf(cursor, query, this.cursorKey);
    for (let read = 1; ; read++) {
      const { rows, next } = await this.read(query, limit, at.token);
      const items = (await expand(rows)).slice(at.skip);
      if (items.length > limit) return { items: items.slice(0, limit), nextCursor: cursorOf({ token: at.token, skip: at.skip + limit }, query, this.cursorKey) };
      if (items.length > 0 || !next || read >= EMPTY_PAGES_PER_CALL) return { items, nextCursor: next ? cursorOf({ token: next, skip: 0 }, query, this.cursorKey) : null };
      at = { token: next, skip: 0 };
    }
  }

  /**
   * A grant its grantee, its reviewers and its revokers may see (to anyone else it does not exist):
   * found in visibility; `forWrite`, then read as its run holds it now, since visibility may lag a
   * change of a moment ago (else as `readState` answers).
   */
  async visibleGrant(caller: Caller, grantId: string, forWrite = false): Promise<GrantRow> {
    const found = await this.whenVisible(caller, grantId, async () => (await this.all(caller.tenant, [equals(searchAttributes.grantId, grantId)]))[0]);
    if (!found) throw notFound('grant');
    const row = { ...found, state: await (forWrite ? this.latestState(found.state) : this.readState(found)) };
    const { state } = row;
    const context = policyContext(askedByGrant(state), await this.sessionSeconds(caller.tenant.id));
    const visible =
      state.key.principalId === caller.principal.id || this.decide(caller, 'review', state.key, context).allowed || this.decide(caller, 'revoke', state.key, context).allowed;
    if (!visible) throw notFound('grant');
    return row;
  }

  /**
   * A run's grant state now, from its memo as Temporal holds it (describe reads the run itself, not
   * visibility, and no worker is involved); null when there is no such run.
   */
  async current(workflowId: string, runId?: string): Promise<GrantState | null> {
    try {
      const run = await this.client.workflow.getHandle(workflowId, runId).describe();
      return (run.memo?.[GRANT_MEMO] as GrantState | undefined) ?? (await this.queried({ workflowId, runId: run.runId }));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** The grant's state now, read from its key's latest run (the same grant while it is open). */
  async latestState(state: GrantState): Promise<GrantState> {
    const now = await this.current(grantWorkflowId(state.key));
    return now && now.id === state.id ? now : state;
  }

  /** One page of visibility; an empty page before the last is read past, so the caller gets rows or the end. */
  private async read(query: string, pageSize: number, token?: Uint8Array): Promise<{ rows: GrantRow[]; next?: Uint8Array }> {
    const { namespace, loadedDataConverter } = this.client.options;
    for (;;) {
      const page = await this.client.workflowService.listWorkflowExecutions({ namespace, query, pageSize, nextPageToken: token });
      // Only what a row needs (the SDK's executionInfoFromRaw decodes every search attribute of
      // every row: most of a page's cost after the call itself).
      const rows = await Promise.all(
        (page.executions ?? []).map(async (raw) => {
          const workflowId = raw.execution?.workflowId ?? '';
          const runId = raw.execution?.runId ?? '';
          const memo = raw.memo?.fields?.[GRANT_MEMO];
          const awaiting = raw.searchAttributes?.indexedFields?.[searchAttributes.awaitingReview.name];
          return {
            workflowId,
            runId,
            state: memo
              ? ((await decodeOptionalSinglePayload(loadedDataConverter, memo, { type: 'workflow', namespace, workflowId })) as GrantState)
              : await this.queried({ workflowId, runId }),
            awaitingReview: !!awaiting && defaultPayloadConverter.fromPayload(awaiting) === true,
          };
        }),
      );
      token = page.nextPageToken?.length ? page.nextPageToken : undefined;
      if (rows.length > 0 || !token) return { rows, next: token };
    }
  }

  /** Only for a run from before 1.1, which has no memo (they end with the namespace's retention). */
  private async queried(run: { workflowId: string; runId: string }): Promise<GrantState> {
    return this.client.workflow.getHandle(run.workflowId, run.runId).query(grantStateQuery);
  }
}

function runsQuery(tenant: TenantConfig, clauses: string[]): string {
  // A run that continued as new is an earlier page of the same grant: its successor speaks for it.
  return [`WorkflowType = 'grantWorkflow'`, `ExecutionStatus != 'ContinuedAsNew'`, equals(searchAttributes.tenant, tenant.id), ...clauses].join(' AND ');
}

/** Where a listing goes on: a Temporal page (none: the first) and how many of its items were answered. */
interface PagePosition {
  token?: Uint8Array;
  skip: number;
}

/**
 * A cursor: the position, and a MAC of it with the query it pages through. Temporal's page token is
 * opaque to us too, and one altered by a client made the engine fail (500): only a cursor this
 * deployment signed, for these filters, is passed on.
 */
function cursorOf(at: PagePosition, query: string, key: Buffer): string {
  return signedCursor({ t: at.token ? Buffer.from(at.token).toString('base64') : null, s: at.skip }, query, key);
}

function positionOf(cursor: string, query: string, key: Buffer): PagePosition {
  const { t, s } = cursorValue<{ t: string | null; s: number }>(cursor, query, key);
  return { token: t === null ? undefined : Buffer.from(t, 'base64'), skip: s };
}

/** A listing's cursor: `value` as base64url JSON, and its MAC with `scope` (the filters it pages through). */
export function signedCursor(value: unknown, scope: string, key: Buffer): string {
  const payload = Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${payload}.${macOf(payload, scope, key)}`;
}

/** The value of a cursor signedCursor made for the same scope; any other is 400 invalid_request. */
export function cursorValue<T>(cursor: string, scope: string, key: Buffer): T {
  const [payload, mac, ...rest] = cursor.split('.');
  // Compared as text: base64 leaves slack in the last character, and an altered cursor is refused however it decodes.
  const given = Buffer.from(mac ?? '');
  const expected = Buffer.from(macOf(payload, scope, key));
  if (rest.length === 0 && given.length === expected.length && timingSafeEqual(given, expected)) {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as T;
  }
  throw new AccessError('invalid_request', 'The cursor is not one this API gave for these filters (use next_cursor as it is, with the same filters).');
}

const macOf = (payload: string, query: string, key: Buffer) => createHmac('sha256', key).update(`${payload}\n${query}`).digest('base64url');

/**
 * One `attribute = 'value'` clause of a visibility query. Every value is validated (uuid, enum,
 * pattern) or encoded (principal) before it gets here; this refuses anything that could still end
 * the literal, so no input can widen a query beyond its tenant.
 */
export function equals(attribute: { name: string }, value: string): string {
  // A space is safe inside the quotes (a group's name may hold one); a quote or backslash is not.
  if (!/^[\w:.@%+=,~ -]*$/.test(value)) throw new Error(`refusing an unsafe value in a visibility query: ${JSON.stringify(value)}`);
  return `${attribute.name} = '${value}'`;
}

export function notFound(what: string): AccessError {
  return new AccessError('not_found', `No such ${what} in this tenant.`);
}

/** Waits `ms` without keeping the process alive: a shutting-down API is never held by a pause between polls. */
export function pause(ms: number): Promise<void> {
  return delay(ms, undefined, { ref: false });
}

/**
 * Temporal calls one API call sends at once for its grants (an ensure, a review of up to
 * MAX_ENTITLEMENTS): bounded, so a call of 500 does not open 500 streams at once, but high: a grant
 * answers an ensure once the worker has taken its first workflow task, and the first tasks of
 * grants started later queue behind the provisioning of those started earlier (the many-accounts
 * bench: 200 grants answered in 31 s 32 at a time, 14 s all at once, on a loaded 2-core machine).
 */
export const GRANT_CALLS_AT_ONCE = 100;

/** `fn` over `items`, at most `atOnce` at a time, settled in the items' order (as Promise.allSettled). */
export async function settledBounded<T, R>(items: readonly T[], fn: (item: T, index: number) => Promise<R>, atOnce = GRANT_CALLS_AT_ONCE): Promise<PromiseSettledResult<R>[]> {
  const settled: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) {
      try {
        settled[i] = { status: 'fulfilled', value: await fn(items[i], i) };
      } catch (reason) {
        settled[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(atOnce, items.length) }, lane));
  return settled;
}

/** settledBounded, failing with the first item's failure (as Promise.all). */
export async function allBounded<T, R>(items: readonly T[], fn: (item: T, index: number) => Promise<R>, atOnce = GRANT_CALLS_AT_ONCE): Promise<R[]> {
  const settled = await settledBounded(items, fn, atOnce);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<R>).value);
}

/** `attribute IN ('a', 'b')`: values checked as `equals` checks them. */
export function among(attribute: { name: string }, values: string[]): string {
  return `${attribute.name} IN (${values.map((v) => equals(attribute, v).slice(attribute.name.length + 3)).join(', ')})`;
}

export function sortGrants(states: GrantState[]): GrantState[] {
  return [...states].sort((a, b) => grantName(a.key).localeCompare(grantName(b.key)));
}
