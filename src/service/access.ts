// What the API does, without HTTP: policy decisions, then messages to grant workflows.
import { randomUUID } from 'node:crypto';
import { type Client, isGrpcServiceError, WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { type AppConfig, env, type TenantConfig } from '../config';
import {
  accountIdOf,
  decideEnsure,
  type Diagnostic,
  encodePrincipal,
  type EnsureRequest,
  type GrantChange,
  type GrantKey,
  type GrantState,
  type GrantStatus,
  type GrantView,
  grantName,
  grantWorkflowId,
  isOpen,
  type Justification,
  newGrantState,
  type Principal,
  toView,
  validateJustification,
} from '../domain/grant';
import type { AuditRecord } from '../domain/audit';
import { AccessError } from '../domain/errors';
import { markdownText } from '../domain/text';
import type { PolicyAction, PolicyDecision, PolicyRequest, PolicySet } from '../policy';
import type { grantWorkflow } from '../workflows/grant';
import {
  ensureUpdate,
  grantStateQuery,
  rejection,
  reviewUpdate,
  revokeUpdate,
  searchAttributes,
} from '../workflows/messages';

export interface Caller {
  tenant: TenantConfig;
  principal: Principal;
}

export interface EnsureInput {
  entitlements: { target: string; role: string; duration_seconds?: number }[];
  justification?: Justification;
  dry_run?: boolean;
}

export interface GrantFilters {
  status?: GrantStatus;
  target?: string;
  role?: string;
}

/** Id of the grant a dry run would make: no grant exists yet, so none is invented. */
export const DRY_RUN_GRANT_ID = '00000000-0000-0000-0000-000000000000';
/** Visibility is eventually consistent: a grant made a moment ago may take this long to be found. */
const VISIBILITY_WAIT_MS = 5000;

/** Writes an audit event; never throws (a failure is counted and logged by whoever made it). */
export type RecordAudit = (record: AuditRecord) => Promise<void>;

export class AccessService {
  constructor(
    private readonly client: Client,
    private readonly policies: ReadonlyMap<string, PolicySet>,
    private readonly recordAudit: RecordAudit = async () => {},
  ) {}

  /** `requestId` (the HTTP request's) makes the id of an ensure_denied event: a retried write is the same event. */
  async ensure(caller: Caller, input: EnsureInput, requestId: string = randomUUID()): Promise<GrantView[]> {
    const planned = input.entitlements.map((e) => this.authorizeEntitlement(caller, e, input.justification ?? {}));
    const denied = planned.filter((p) => p.denied);
    if (denied.length > 0) {
      // On record before the caller hears the answer (issue 13): one event per refused entitlement.
      await Promise.all(
        denied.map((p, i) =>
          this.recordAudit({
            tenant_id: caller.tenant.id,
            event: 'ensure_denied',
            at: new Date().toISOString(),
            actor: { type: 'principal', id: caller.principal.id },
            principal: { id: caller.principal.id, ...(caller.principal.email !== undefined && { email: caller.principal.email }) },
            target: p.key.target,
            role: p.key.role,
            grant_id: null,
            access_request_id: null,
            details: {
              entitlements: input.entitlements,
              policies: p.policyIds,
              notices: p.notices,
              reason: input.justification?.reason ?? null,
              attachments: input.justification?.attachments ?? [],
              dry_run: input.dry_run ?? false,
              request_id: requestId,
            },
            occurrence: `${requestId}/${i}`,
          }),
        ),
      );
      throw new AccessError('forbidden', 'Policy does not allow every entitlement; nothing was changed.', {
        details: { denied: denied.map((p) => ({ target: p.key.target, role: p.key.role })) },
        notices: [...new Set(denied.flatMap((p) => p.notices))],
      });
    }
    return Promise.all(planned.map((p) => this.ensureOne(caller, p.key, p.request, input.dry_run ?? false)));
  }

  async listGrants(caller: Caller, filters: GrantFilters): Promise<GrantView[]> {
    const clauses = [equals(searchAttributes.principal, encodePrincipal(caller.principal.id))];
    if (filters.status) clauses.push(equals(searchAttributes.status, filters.status));
    if (filters.target) clauses.push(equals(searchAttributes.target, filters.target));
    if (filters.role) clauses.push(equals(searchAttributes.role, filters.role));
    const found = await this.findRuns(caller.tenant, clauses, 100);
    const states = await Promise.all(found.map((run) => this.stateOf(run)));
    return states.filter((s): s is GrantState => s !== null).map((s) => toView(s, 'none'));
  }

  async getGrant(caller: Caller, grantId: string): Promise<GrantView> {
    return toView((await this.visibleGrant(caller, grantId)).state, 'none');
  }

  async review(caller: Caller, accessRequestId: string, decision: 'approve' | 'deny', comment?: string): Promise<GrantView> {
    const { run, state } = await this.findGrant(caller.tenant, equals(searchAttributes.requestId, accessRequestId), 'access request');
    // Its requester sees it (and may not review it); so does whoever may review it. To anyone
    // else it does not exist: the same 404 as an unknown id, so no answer confirms an id.
    if (state.key.principalId === caller.principal.id) throw new AccessError('forbidden', 'Nobody reviews their own request.');
    if (!this.decide(caller, 'review', state).allowed) throw notFound('access request');
    if (state.status !== 'pending') throw new AccessError('conflict', `The request is ${state.status}, not pending.`);
    const handle = this.client.workflow.getHandle(run.workflowId, run.runId);
    const after = await rejectionsAsErrors(() =>
      handle.executeUpdate(reviewUpdate, { args: [{ decision, reviewerId: caller.principal.id, comment }] }),
    );
    return toView(after, 'none');
  }

  async revoke(caller: Caller, grantId: string, reason?: string): Promise<GrantView> {
    const { run, state } = await this.visibleGrant(caller, grantId);
    if (state.key.principalId !== caller.principal.id) {
      const verdict = this.decide(caller, 'revoke', state);
      if (!verdict.allowed) {
        throw new AccessError('forbidden', 'Policy does not allow you to revoke this grant.', { notices: verdict.notices });
      }
    }
    if (!isOpen(state)) throw new AccessError('conflict', `The grant is already ${state.status}.`);
    if (state.revocation) throw new AccessError('conflict', 'The grant is already being revoked.');
    const handle = this.client.workflow.getHandle<typeof grantWorkflow>(run.workflowId, run.runId);
    const revoked = await rejectionsAsErrors(() =>
      handle.executeUpdate(revokeUpdate, { args: [{ revokedBy: caller.principal.id, reason }] }),
    );
    // Answer once the assignment is gone, so the caller's "revoked" means no access. Asked by
    // query, not by the run's result: the run may still be finishing its notifications.
    const deadline = Date.now() + env.revokeWaitMs;
    let latest = revoked;
    while (latest.status !== 'revoked' && latest.status !== 'expired') {
      if (Date.now() > deadline) break;
      await delay(250);
      latest = await handle.query(grantStateQuery).catch((err) => {
        if (err instanceof WorkflowNotFoundError) return latest;
        throw err;
      });
    }
    if (latest.status === 'revoked' || latest.status === 'expired') return toView(latest, 'none');
    // Not a failure: the revocation is recorded and the workflow keeps at the removal.
    return toView(latest, 'none', [
      {
        level: 'info',
        code: 'revocation_in_progress',
        message: `The revocation is recorded; removing the account assignment is still under way (the grant shows ${latest.status} until it is gone). Read the grant again to see it end.`,
      },
    ]);
  }

  private authorizeEntitlement(caller: Caller, entitlement: EnsureInput['entitlements'][number], justification: Justification) {
    const { tenant, principal } = caller;
    const key: GrantKey = { tenantId: tenant.id, principalId: principal.id, target: entitlement.target, role: entitlement.role };
    const limits = tenant.grants;
    const durationSeconds = entitlement.duration_seconds ?? limits.default_duration_seconds;
    const validation = validateJustification(justification);
    const context = { role: key.role, duration_seconds: durationSeconds, has_reason: validation.has_reason, has_ticket_attachment: validation.has_ticket_attachment };
    const request: EnsureRequest = {
      durationSeconds,
      autoApprove: false,
      justification,
      validation,
      pendingTtlSeconds: limits.pending_request_ttl_seconds,
      reviewDiagnostics: [],
      notifications: notificationsOf(tenant),
    };
    if (durationSeconds > limits.max_duration_seconds) {
      const notice = `${key.role} on ${key.target}: at most ${limits.max_duration_seconds} seconds may be requested (asked for ${durationSeconds}).`;
      return { key, request, denied: true, notices: [notice], policyIds: [] as string[] };
    }
    const asked = this.decideFor(tenant, principal, 'request', key, context);
    if (!asked.allowed) {
      const notices = asked.notices.length > 0 ? asked.notices : [`No policy allows ${principal.id} to request ${key.role} on ${key.target}.`];
      return { key, request, denied: true, notices, policyIds: asked.policyIds };
    }
    request.autoApprove = this.decideFor(tenant, principal, 'activate', key, context).allowed;
    if (!request.autoApprove) {
      request.reviewDiagnostics = [
        {
          level: 'info',
          code: 'review_required',
          message: `${key.role} on ${key.target} needs approval by a reviewer.`,
          notices: asked.notices,
          policies: asked.policyIds,
        },
      ];
    }
    return { key, request, denied: false, notices: [] as string[], policyIds: [] as string[] };
  }

  private async ensureOne(caller: Caller, key: GrantKey, request: EnsureRequest, dryRun: boolean): Promise<GrantView> {
    const workflowId = grantWorkflowId(key);
    const handle = this.client.workflow.getHandle<typeof grantWorkflow>(workflowId);
    for (let attempt = 1; ; attempt++) {
      const current = await handle.query(grantStateQuery).catch((err) => {
        if (err instanceof WorkflowNotFoundError) return null;
        // A grant busy with other calls has no room for one more query: the update below decides
        // the same way, at the price of a few history events (continue-as-new bounds those).
        if (!dryRun && isQueryBufferFull(err)) return undefined;
        throw err;
      });
      if (current !== undefined) {
        // A grant being revoked is over for this call: its update is refused as closing, and the
        // call then waits for the run to close and starts a new grant.
        const open = current?.revocation ? null : current;
        const decision = decideEnsure(open, request, new Date());
        const extra: Diagnostic[] = decision.change === 'none' ? (decision.diagnostics ?? []) : [];
        // The read-only answers stay off the workflow's history.
        if (decision.change === 'none' && open) return toView(open, 'none', extra);
        if (dryRun) return toView(wouldBe(open, caller.principal, key, request, decision), decision.change, extra);
      }
      try {
        const outcome = await this.client.workflow.executeUpdateWithStart(ensureUpdate, {
          args: [request],
          startWorkflowOperation: new WithStartWorkflowOperation<typeof grantWorkflow>('grantWorkflow', {
            workflowId,
            taskQueue: env.taskQueue,
            args: [{ key, principal: caller.principal, grantId: randomUUID() }],
            workflowIdConflictPolicy: 'USE_EXISTING',
            ...uiSummary(caller.principal, key, request),
          }),
        });
        return toView(outcome.state, outcome.change, outcome.diagnostics);
      } catch (err) {
        // The grant is being closed: once its run ends, the next attempt starts a new grant.
        if (rejectionType(err) === rejection.closing) {
          if (attempt < 3) {
            await Promise.race([handle.result().catch(() => undefined), delay(30_000)]);
            continue;
          }
          throw new AccessError('conflict', `${grantName(key)}: the grant is still being closed (its access is being removed); try again once it has closed.`);
        }
        // The run continued as new before it took the update (NOT_FOUND): ask its successor.
        if (attempt < 5 && grpcCodeOf(err) === 5) {
          await delay(100 * attempt);
          continue;
        }
        throw err;
      }
    }
  }

  private decide(caller: Caller, action: PolicyAction, grant: GrantState): PolicyDecision {
    return this.decideFor(caller.tenant, caller.principal, action, grant.key, {
      role: grant.key.role,
      duration_seconds: grant.durationSeconds,
      has_reason: grant.validation.has_reason,
      has_ticket_attachment: grant.validation.has_ticket_attachment,
    });
  }

  private decideFor(
    tenant: TenantConfig,
    principal: Principal,
    action: PolicyAction,
    key: GrantKey,
    context: PolicyRequest['context'],
  ): PolicyDecision {
    const accountId = accountIdOf(key.target);
    return this.policySet(tenant).authorize({
      principal,
      action,
      accountId,
      accountEnvironment: tenant.accounts[accountId]?.environment ?? '',
      context,
    });
  }

  private policySet(tenant: TenantConfig): PolicySet {
    const set = this.policies.get(tenant.id);
    if (!set) throw new Error(`no policies loaded for tenant ${tenant.id}`);
    return set;
  }

  private async findRuns(tenant: TenantConfig, clauses: string[], limit: number): Promise<{ workflowId: string; runId: string }[]> {
    // A run that continued as new is an earlier page of the same grant: its successor speaks for it.
    const query = [`WorkflowType = 'grantWorkflow'`, `ExecutionStatus != 'ContinuedAsNew'`, equals(searchAttributes.tenant, tenant.id), ...clauses].join(' AND ');
    const runs: { workflowId: string; runId: string }[] = [];
    for await (const info of this.client.workflow.list({ query, pageSize: limit })) {
      runs.push({ workflowId: info.workflowId, runId: info.runId });
      if (runs.length >= limit) break;
    }
    return runs;
  }

  /** A grant its grantee, its reviewers and its revokers may see; to anyone else it does not exist. */
  private async visibleGrant(caller: Caller, grantId: string) {
    const found = await this.findGrant(caller.tenant, equals(searchAttributes.grantId, grantId), 'grant');
    const { state } = found;
    const visible =
      state.key.principalId === caller.principal.id ||
      this.decide(caller, 'review', state).allowed ||
      this.decide(caller, 'revoke', state).allowed;
    if (!visible) throw notFound('grant');
    return found;
  }

  private async findGrant(tenant: TenantConfig, clause: string, what: string) {
    const deadline = Date.now() + VISIBILITY_WAIT_MS;
    for (;;) {
      const [run] = await this.findRuns(tenant, [clause], 1);
      const state = run ? await this.stateOf(run) : null;
      if (run && state) return { run, state };
      if (Date.now() > deadline) throw notFound(what);
      await delay(250);
    }
  }

  private async stateOf(run: { workflowId: string; runId: string }): Promise<GrantState | null> {
    try {
      return await this.client.workflow.getHandle(run.workflowId, run.runId).query(grantStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }
}

function notificationsOf(tenant: TenantConfig): EnsureRequest['notifications'] {
  const { webhooks, expiry_warning_seconds } = tenant.notifications;
  if (webhooks.length === 0) return undefined;
  return { events: [...new Set(webhooks.flatMap((w) => w.events))], expiryWarningSeconds: expiry_warning_seconds };
}

function wouldBe(current: GrantState | null, principal: Principal, key: GrantKey, req: EnsureRequest, decision: { change: GrantChange; expiresAt?: string }): GrantState {
  const state = current && isOpen(current) ? structuredClone(current) : newGrantState(key, principal, DRY_RUN_GRANT_ID);
  state.validation = current && isOpen(current) ? state.validation : req.validation;
  if (decision.change === 'activated') {
    Object.assign(state, { status: 'provisioning', approved: true, durationSeconds: req.durationSeconds });
  } else if (decision.change === 'requested') {
    Object.assign(state, { status: 'pending', durationSeconds: req.durationSeconds });
    state.diagnostics = req.reviewDiagnostics;
  } else if (decision.change === 'extended') {
    Object.assign(state, { expiresAt: decision.expiresAt, durationSeconds: req.durationSeconds });
  }
  return state;
}

/**
 * One `attribute = 'value'` clause of a visibility query. Every value is validated (uuid, enum,
 * pattern) or encoded (principal) before it gets here; this refuses anything that could still end
 * the literal, so no input can widen a query beyond its tenant.
 */
export function equals(attribute: { name: string }, value: string): string {
  if (!/^[\w:.@%+=,~-]*$/.test(value)) throw new Error(`refusing an unsafe value in a visibility query: ${JSON.stringify(value)}`);
  return `${attribute.name} = '${value}'`;
}

/**
 * The Web UI's summary and details of a grant's workflow (Markdown), fixed at its start. When
 * access ends is in the AccessExpiresAt column and the workflow's current details.
 */
function uiSummary(principal: Principal, key: GrantKey, req: EnsureRequest): { staticSummary: string; staticDetails: string } {
  // The Web UI renders these as Markdown: what the requester wrote, and the names in their token,
  // are escaped so that they read as themselves and not as the service's own headings or links.
  const who = principal.email ? `${markdownText(principal.id)} (${markdownText(principal.email)})` : markdownText(principal.id);
  const role = markdownText(key.role);
  const hours = req.durationSeconds % 3600 === 0 ? `${req.durationSeconds / 3600}h` : `${req.durationSeconds}s`;
  const how = req.autoApprove ? 'auto-approved' : 'needs review';
  const { reason, attachments = [] } = req.justification;
  const details = [
    `**${role}** on \`${key.target}\` for ${who}, ${hours} once active (${how}).`,
    `Tenant \`${key.tenantId}\`.`,
    ...(reason?.trim() ? [`Reason: ${markdownText(reason.trim().slice(0, 500))}`] : []),
    ...(attachments.length > 0 ? [`Attachments: ${attachments.slice(0, 5).map(markdownText).join(', ')}`] : []),
  ];
  return { staticSummary: `${who}: ${role} on ${accountIdOf(key.target)} for ${hours} (${how})`, staticDetails: details.join('\n\n') };
}

/**
 * Temporal buffers queries to a workflow while it runs a task; past a small limit (one by default)
 * it answers RESOURCE_EXHAUSTED, and the client's own retries do not wait long enough under load.
 */
function isQueryBufferFull(err: unknown): boolean {
  return grpcCodeOf(err) === 8; // RESOURCE_EXHAUSTED
}

function grpcCodeOf(err: unknown): number | undefined {
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    if (isGrpcServiceError(cause)) return cause.code;
  }
  return undefined;
}

function rejectionType(err: unknown): string | undefined {
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

async function rejectionsAsErrors<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new AccessError('conflict', 'The grant has already closed.');
    const type = rejectionType(err);
    const message = (err as WorkflowUpdateFailedError).cause?.message ?? '';
    if (type === rejection.selfReview) throw new AccessError('forbidden', message);
    if (type === rejection.notPending || type === rejection.notOpen) throw new AccessError('conflict', message);
    throw err;
  }
}

function notFound(what: string): AccessError {
  return new AccessError('not_found', `No such ${what} in this tenant.`);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
