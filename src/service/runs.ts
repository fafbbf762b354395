// Grant runs as the service reads them from Temporal, and the policy decisions made on them:
// what the ensure, request and grant services share.
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { environmentOf, type TenantConfig } from '../config';
import { accountIdOf, type GrantKey, grantName, type GrantState, grantWorkflowId, type Principal } from '../domain/grant';
import { AccessError } from '../domain/errors';
import type { PolicyAction, PolicyDecision, PolicyRequest, PolicySet } from '../policy';
import { grantStateQuery, searchAttributes } from '../workflows/messages';

export interface Caller {
  tenant: TenantConfig;
  principal: Principal;
}

export interface RunRef {
  workflowId: string;
  runId: string;
  requestId?: string;
  status?: string;
}

/** Visibility is eventually consistent: a grant made a moment ago may take this long to be found. */
export const VISIBILITY_WAIT_MS = 5000;

export class GrantRuns {
  constructor(
    readonly client: Client,
    private readonly policies: ReadonlyMap<string, PolicySet>,
  ) {}

  /** The caller's `action` on an existing grant, with the grant's own duration and justification. */
  decide(caller: Caller, action: PolicyAction, grant: GrantState): PolicyDecision {
    return this.decideFor(caller.tenant, caller.principal, action, grant.key, {
      role: grant.key.role,
      duration_seconds: grant.durationSeconds,
      has_reason: grant.validation.has_reason,
      has_ticket_attachment: grant.validation.has_ticket_attachment,
      break_glass: false,
    });
  }

  decideFor(tenant: TenantConfig, principal: Principal, action: PolicyAction, key: GrantKey, context: PolicyRequest['context']): PolicyDecision {
    const accountId = accountIdOf(key.target);
    return this.policySet(tenant).authorize({
      principal,
      action,
      accountId,
      accountEnvironment: environmentOf(tenant, accountId),
      context,
    });
  }

  policySet(tenant: TenantConfig): PolicySet {
    const set = this.policies.get(tenant.id);
    if (!set) throw new Error(`no policies loaded for tenant ${tenant.id}`);
    return set;
  }

  /** The tenant's grant runs matching every clause, latest first, at most `limit`. */
  async find(tenant: TenantConfig, clauses: string[], limit: number): Promise<RunRef[]> {
    const query = runsQuery(tenant, clauses);
    const runs: RunRef[] = [];
    for await (const info of this.client.workflow.list({ query, pageSize: Math.min(limit, 200) })) {
      const requestId = info.typedSearchAttributes.get(searchAttributes.requestId);
      runs.push({ workflowId: info.workflowId, runId: info.runId, requestId, status: info.typedSearchAttributes.get(searchAttributes.status) });
      if (runs.length >= limit) break;
    }
    return runs;
  }

  /**
   * One page of the tenant's grant runs matching every clause, latest first, and the cursor of the
   * next (null after the last): Temporal's own page token, tied to the query it pages through.
   */
  async page(tenant: TenantConfig, clauses: string[], pageSize: number, cursor?: string): Promise<{ runs: RunRef[]; nextCursor: string | null }> {
    const query = runsQuery(tenant, clauses);
    let token = cursor === undefined ? undefined : tokenOf(cursor, query);
    for (;;) {
      const page = await this.client.workflowService.listWorkflowExecutions({
        namespace: this.client.options.namespace,
        query,
        pageSize,
        nextPageToken: token,
      });
      const runs = (page.executions ?? []).map((e) => ({ workflowId: e.execution!.workflowId!, runId: e.execution!.runId! }));
      token = page.nextPageToken?.length ? page.nextPageToken : undefined;
      // Temporal may answer an empty page before the last: the caller gets rows, or the end.
      if (runs.length > 0 || !token) return { runs, nextCursor: token ? cursorOf(token, query) : null };
    }
  }

  /** A grant its grantee, its reviewers and its revokers may see; to anyone else it does not exist. */
  async visibleGrant(caller: Caller, grantId: string): Promise<{ run: RunRef; state: GrantState }> {
    const found = await whenVisible(async () => {
      const [run] = await this.find(caller.tenant, [equals(searchAttributes.grantId, grantId)], 1);
      const state = run ? await this.stateOf(run) : null;
      return run && state ? { run, state } : undefined;
    });
    if (!found) throw notFound('grant');
    const { state } = found;
    const visible =
      state.key.principalId === caller.principal.id || this.decide(caller, 'review', state).allowed || this.decide(caller, 'revoke', state).allowed;
    if (!visible) throw notFound('grant');
    return found;
  }

  async stateOf(run: { workflowId: string; runId: string }): Promise<GrantState | null> {
    try {
      return await this.client.workflow.getHandle(run.workflowId, run.runId).query(grantStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** The grant's state now, read from its key's latest run (the same grant while it is open). */
  async latestState(state: GrantState): Promise<GrantState> {
    const now = await this.client.workflow
      .getHandle(grantWorkflowId(state.key))
      .query(grantStateQuery)
      .catch(() => null);
    return now && now.id === state.id ? now : state;
  }
}

function runsQuery(tenant: TenantConfig, clauses: string[]): string {
  // A run that continued as new is an earlier page of the same grant: its successor speaks for it.
  return [`WorkflowType = 'grantWorkflow'`, `ExecutionStatus != 'ContinuedAsNew'`, equals(searchAttributes.tenant, tenant.id), ...clauses].join(' AND ');
}

/** What a cursor carries: Temporal's page token, and a digest of the query it belongs to. */
function cursorOf(token: Uint8Array, query: string): string {
  return Buffer.from(JSON.stringify({ t: Buffer.from(token).toString('base64'), q: digestOf(query) })).toString('base64url');
}

function tokenOf(cursor: string, query: string): Uint8Array {
  try {
    const { t, q } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { t: unknown; q: unknown };
    if (typeof t === 'string' && q === digestOf(query)) return Buffer.from(t, 'base64');
  } catch {
    // Falls through to the error below.
  }
  throw new AccessError('invalid_request', 'The cursor is not one this API gave for these filters (use next_cursor as it is, with the same filters).');
}

const digestOf = (query: string) => createHash('sha256').update(query).digest('base64url').slice(0, 22);

/**
 * One `attribute = 'value'` clause of a visibility query. Every value is validated (uuid, enum,
 * pattern) or encoded (principal) before it gets here; this refuses anything that could still end
 * the literal, so no input can widen a query beyond its tenant.
 */
export function equals(attribute: { name: string }, value: string): string {
  if (!/^[\w:.@%+=,~-]*$/.test(value)) throw new Error(`refusing an unsafe value in a visibility query: ${JSON.stringify(value)}`);
  return `${attribute.name} = '${value}'`;
}

export function notFound(what: string): AccessError {
  return new AccessError('not_found', `No such ${what} in this tenant.`);
}

/** Waits `ms` without keeping the process alive: a shutting-down API is never held by a pause between polls. */
export function pause(ms: number): Promise<void> {
  return delay(ms, undefined, { ref: false });
}

/** Asks `find` until it answers or VISIBILITY_WAIT_MS has passed: a run made a moment ago may not be listed yet. */
export async function whenVisible<T>(find: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + VISIBILITY_WAIT_MS;
  for (;;) {
    const found = await find();
    if (found !== undefined || Date.now() > deadline) return found;
    await pause(250);
  }
}

export function sortGrants(states: GrantState[]): GrantState[] {
  return [...states].sort((a, b) => grantName(a.key).localeCompare(grantName(b.key)));
}
