// What the API does, without HTTP: policy decisions, then messages to grant workflows.
import { randomUUID } from 'node:crypto';
import { type Client, isGrpcServiceError, WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { LRUCache } from 'lru-cache';
import { type AppConfig, env, environmentOf, type TenantConfig } from '../config';
import {
  accountIdOf,
  alreadyDecided,
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
  OPEN_STATUSES,
  newGrantState,
  type Principal,
  toView,
  validateJustification,
  approvedAsAnother,
  personOf,
} from '../domain/grant';
import type { AuditRecord } from '../domain/audit';
import { AccessError } from '../domain/errors';
import { type AccessRequestView, requestIdsOf, requestPartOf, type RequestPart, requestStatus, type RequestStatus, toRequestView } from '../domain/request';
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
import { RateLimiter } from './rate-limit';

export interface Caller {
  tenant: TenantConfig;
  principal: Principal;
}

export interface EnsureInput {
  entitlements: { target: string; role: string; duration_seconds?: number }[];
  justification?: Justification;
  dry_run?: boolean;
  break_glass?: boolean;
}

export interface RequestFilters {
  status?: RequestStatus;
  mine?: boolean;
  limit?: number;
  cursor?: string;
}

export interface GrantFilters {
  status?: GrantStatus;
  target?: string;
  role?: string;
}

/** Id of the grant a dry run would make: no grant exists yet, so none is invented. */
export const DRY_RUN_GRANT_ID = '00000000-0000-0000-0000-000000000000';
/** How many of a tenant's latest grant runs a request listing looks through (README: a bounded scan). */
const REQUEST_SCAN_LIMIT = 1000;
/** Visibility is eventually consistent: a grant made a moment ago may take this long to be found. */
const VISIBILITY_WAIT_MS = 5000;

/** A grant's state as ensure finds it: null when there is none, undefined when it is too busy to say. */
type Found = GrantState | null | undefined;

/**
 * How long this API process remembers a grant's state from its own answers. Only to skip the query
 * before an ensure that it predicts will extend the grant (the workflow decides anyway): a state
 * older than this is asked for again.
 */
const SEEN_FOR_MS = 5 * 60_000;

/** Writes an audit event; never throws (a failure is counted and logged by whoever made it). */
export type RecordAudit = (record: AuditRecord) => Promise<void>;

export class AccessService {
  private readonly ensureRate = new RateLimiter();
  /** Each grant's latest state as this process saw it, by workflow id (see SEEN_FOR_MS). */
  private readonly seen = new LRUCache<string, GrantState>({ max: 10_000, ttl: SEEN_FOR_MS });

  constructor(
    private readonly client: Client,
    private readonly policies: ReadonlyMap<string, PolicySet>,
    private readonly recordAudit: RecordAudit = async () => {},
  ) {}

  /** `requestId`: the HTTP request's (X-Request-ID), kept in an ensure_denied event as data, never as its id. */
  async ensure(caller: Caller, input: EnsureInput, requestId: string = randomUUID()): Promise<GrantView[]> {
    this.takeEnsureToken(caller);
    // One access request per call, for every entitlement of it that needs review.
    const accessRequestId = randomUUID();
    const planned = input.entitlements.map((e) => this.authorizeEntitlement(caller, e, input.justification ?? {}, accessRequestId, input.break_glass ?? false));
    const denied = planned.filter((p) => p.denied);
    if (denied.length > 0) {
      // On record before the caller hears the answer (issue 13), as one event per refused call
      // (the ensure rate limit bounds them), under an id of the service's own: a caller who
      // repeats an X-Request-ID neither hides a denial nor takes another caller's event (issue 19).
      await this.recordAudit({
        tenant_id: caller.tenant.id,
        event: 'ensure_denied',
        at: new Date().toISOString(),
        actor: { type: 'principal', id: caller.principal.id },
        principal: { id: caller.principal.id, ...(caller.principal.email !== undefined && { email: caller.principal.email }) },
        target: denied[0].key.target,
        role: denied[0].key.role,
        grant_id: null,
        access_request_id: null,
        details: {
          entitlements: input.entitlements,
          denied: denied.map((p) => ({ target: p.key.target, role: p.key.role, policies: p.policyIds, notices: p.notices })),
          denied_count: denied.length,
          policies: [...new Set(denied.flatMap((p) => p.policyIds))],
          notices: [...new Set(denied.flatMap((p) => p.notices))],
          reason: input.justification?.reason ?? null,
          attachments: input.justification?.attachments ?? [],
          dry_run: input.dry_run ?? false,
          request_id: requestId,
        },
        occurrence: randomUUID(),
      });
      throw new AccessError('forbidden', 'Policy does not allow every entitlement; nothing was changed.', {
        details: { denied: denied.map((p) => ({ target: p.key.target, role: p.key.role })) },
        notices: [...new Set(denied.flatMap((p) => p.notices))],
      });
    }
    const dryRun = input.dry_run ?? false;
    // One entitlement only: with more, a fallback refused by the open-grant limit (ensureOne) would
    // come after another entitlement of the call had already changed, and the call is all-or-nothing.
    const extending = planned.map((p) => planned.length === 1 && !dryRun && this.predictsExtension(grantWorkflowId(p.key), p.request));
    const found = await Promise.all(planned.map((p, i) => (extending[i] ? undefined : this.currentState(grantWorkflowId(p.key), dryRun))));
    const starting = planned.filter((p, i) => startsGrant(found[i], p.request)).length;
    if (starting > 0) await this.checkOpenGrants(caller, starting);
    const settled = await Promise.allSettled(
      planned.map(async (p, i) => (extending[i] && (await this.extend(p.key, p.request))) || this.ensureOne(caller, p.key, p.request, dryRun, found[i], extending[i])),
    );
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) {
      const changed = settled.flatMap((r) => (r.status === 'fulfilled' && r.value.change !== 'none' ? [r.value] : []));
      throw changed.length > 0 ? withChanged(failed.reason, changed) : failed.reason;
    }
    const views = settled.map((r) => (r as PromiseFulfilledResult<GrantView>).value);
    // `validation` answers this call's justification, not the one the grant was first asked with.
    return views.map((view, i) => ({ ...view, validation: planned[i].request.validation }));
  }

  /** Whether this process last saw the grant active, open, and ending before `request` would have it end. */
  private predictsExtension(workflowId: string, request: EnsureRequest): boolean {
    const open = unlessRevoked(this.seen.get(workflowId) ?? null);
    return open?.status === 'active' && decideEnsure(open, request, new Date()).change === 'extended';
  }

  /**
   * An extension sent straight to the running grant, as one update (no query first, nothing
   * started). Undefined when the grant is no longer running or is being closed: the usual path
   * then finds out what it is.
   */
  private async extend(key: GrantKey, request: EnsureRequest): Promise<GrantView | undefined> {
    const workflowId = grantWorkflowId(key);
    try {
      const outcome = await onceMoreIfTaskFailed(() =>
        this.client.workflow.getHandle<typeof grantWorkflow>(workflowId).executeUpdate(ensureUpdate, { args: [request] }),
      );
      this.seen.set(workflowId, outcome.state);
      return toView(outcome.state, outcome.change, outcome.diagnostics);
    } catch (err) {
      this.seen.delete(workflowId);
      if (err instanceof WorkflowNotFoundError || grpcCodeOf(err) === 5 || rejectionType(err) === rejection.closing) return undefined;
      throw err;
    }
  }

  /** The per-principal ensure rate (per API process): past it, 429 with when to try again. */
  private takeEnsureToken({ tenant, principal }: Caller): void {
    const { ensure_rate_per_minute: perMinute, ensure_burst: burst } = tenant.grants;
    const waitSeconds = this.ensureRate.take(`${tenant.id}\n${principal.id}`, perMinute, burst);
    if (waitSeconds > 0) {
      throw new AccessError(
        'rate_limited',
        `Too many ensure calls: at most ${perMinute} a minute (${burst} at once) per principal. Try again in ${waitSeconds} s.`,
        { details: { ensure_rate_per_minute: perMinute, ensure_burst: burst, retry_after_seconds: waitSeconds } },
        waitSeconds,
      );
    }
  }

  /**
   * `max_open_per_principal`: the call may not take the caller past it (403, nothing changed).
   * Counted in Temporal's visibility, which is eventually consistent: grants started by concurrent
   * calls (or a moment ago) may not be counted yet, so the limit can be overshot by that many.
   */
  private async checkOpenGrants({ tenant, principal }: Caller, starting: number): Promise<void> {
    const limit = tenant.grants.max_open_per_principal;
    const query = [
      `WorkflowType = 'grantWorkflow'`,
      `ExecutionStatus = 'Running'`,
      equals(searchAttributes.tenant, tenant.id),
      equals(searchAttributes.principal, encodePrincipal(principal.id)),
      `${searchAttributes.status.name} IN (${OPEN_STATUSES.map((s) => `'${s}'`).join(', ')})`,
    ].join(' AND ');
    const open = starting > limit ? 0 : (await this.client.workflow.count(query)).count;
    if (open + starting > limit) {
      throw new AccessError('forbidden', `At most ${limit} open grants per principal; nothing was changed.`, {
        details: { max_open_per_principal: limit, open, starting },
        notices: [`You may hold at most ${limit} open grants in this tenant: you hold ${open}, and this call would start ${starting} more.`],
      });
    }
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

  async listRequests(caller: Caller, filters: RequestFilters): Promise<{ requests: AccessRequestView[]; next_cursor: string | null }> {
    const after = filters.cursor === undefined ? null : decodeCursor(filters.cursor);
    const clauses = filters.mine ? [equals(searchAttributes.principal, encodePrincipal(caller.principal.id))] : [];
    // Only runs of grants with a request carry a request id. A pending request has a pending grant
    // (or, for an extension or break-glass follow-up, an active one), so that filter is narrowed in
    // visibility; the rest is decided from the grants' states, which hold every request they were part of.
    const waits = (status?: string) => status === 'pending' || status === 'active' || status === 'provisioning';
    const runs = (await this.findRuns(caller.tenant, clauses, REQUEST_SCAN_LIMIT)).filter((r) => r.requestId && (filters.status !== 'pending' || waits(r.status)));
    const states = (await Promise.all(runs.map((r) => this.stateOf(r)))).filter((st): st is GrantState => st !== null);
    const now = new Date();
    const byRequest = new Map<string, RequestPart[]>();
    for (const st of sortGrants(states)) {
      for (const id of requestIdsOf(st)) byRequest.set(id, [...(byRequest.get(id) ?? []), requestPartOf(st, id, now)!]);
    }
    const composed = [...byRequest.entries()].map(([id, parts]) => (this.seesRequest(caller, parts) ? toRequestView(id, parts) : null));
    const listed = composed
      .filter((r): r is AccessRequestView => r !== null && (!filters.status || r.status === filters.status))
      .sort(newestFirst)
      .filter((r) => !after || newestFirst(r, { created_at: after.createdAt, id: after.id }) > 0);
    const limit = filters.limit ?? 50;
    const page = listed.slice(0, limit);
    const last = page.at(-1);
    return { requests: page, next_cursor: listed.length > limit && last ? encodeCursor(last) : null };
  }

  async getRequest(caller: Caller, accessRequestId: string): Promise<AccessRequestView> {
    const parts = await this.requestParts(caller.tenant, accessRequestId);
    if (!this.seesRequest(caller, parts)) throw notFound('access request');
    return toRequestView(accessRequestId, parts);
  }

  /**
   * Sends the decision to every grant of the request, once all of them are checked. A reviewer's
   * repeated decision is a no-op answered with the request as it is, so a review cut off half-way
   * (one grant's update failed) is completed by sending it again.
   */
  async review(caller: Caller, accessRequestId: string, decision: 'approve' | 'deny', comment?: string): Promise<AccessRequestView> {
    const parts = await this.requestParts(caller.tenant, accessRequestId);
    const states = parts.map((p) => p.state);
    // Its requester sees it (and may not review it); so does whoever may review it. To anyone
    // else it does not exist: the same 404 as an unknown id, so no answer confirms an id.
    // One person, whichever way they came (a token, a Slack click): by id, and by the user claim (personOf).
    const reviewer = personOf(caller.principal);
    if (states[0].key.principalId === caller.principal.id || personOf(states[0].principal) === reviewer) {
      throw new AccessError('forbidden', 'Nobody reviews their own request.');
    }
    const refused = parts.filter((p) => !this.mayReview(caller, p)).map((p) => p.state);
    if (refused.length === states.length) throw notFound('access request');
    if (refused.length > 0) {
      throw new AccessError('forbidden', `Policy does not allow you to review ${refused.map((st) => grantName(st.key)).join(', ')}; nothing was reviewed.`, {
        details: { grants: refused.map((st) => ({ id: st.id, target: st.key.target, role: st.key.role })) },
      });
    }
    const review = { decision, reviewerId: caller.principal.id, reviewerUser: reviewer, comment, accessRequestId };
    const earlier = parts.map((p) => approvedAsAnother(p.approvals, review)).find((a) => a !== undefined);
    if (earlier) throw new AccessError('conflict', `You have already approved this request (as ${earlier.reviewerId}); one person counts once.`);
    const toSend = parts.filter((p) => p.awaitsReview && !alreadyDecided(p, review)).map((p) => p.state);
    if (toSend.length === 0 && !parts.some((p) => alreadyDecided(p, review))) {
      throw new AccessError('conflict', `The request is ${requestStatus(parts)}, not pending.`);
    }
    const sent = await Promise.allSettled(
      toSend.map((st) =>
        rejectionsAsErrors(() => this.client.workflow.getHandle(grantWorkflowId(st.key)).executeUpdate(reviewUpdate, { args: [review] })),
      ),
    );
    const failed = sent.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    // The decision is taken; the grants leave `pending` in their next step. Answer with that.
    const deadline = Date.now() + VISIBILITY_WAIT_MS;
    for (;;) {
      const after = await Promise.all(states.map((st) => this.latestState(st)));
      const settling = after.some((st) => st.status === 'pending' && st.review);
      const now = new Date();
      if (!settling || Date.now() > deadline) return toRequestView(accessRequestId, after.map((st) => requestPartOf(st, accessRequestId, now)!));
      await delay(100);
    }
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

  private authorizeEntitlement(
    caller: Caller,
    entitlement: EnsureInput['entitlements'][number],
    justification: Justification,
    accessRequestId: string,
    breakGlass: boolean,
  ) {
    const { tenant, principal } = caller;
    const key: GrantKey = { tenantId: tenant.id, principalId: principal.id, target: entitlement.target, role: entitlement.role };
    const limits = tenant.grants;
    const accountId = accountIdOf(key.target);
    const durationSeconds = entitlement.duration_seconds ?? limits.default_duration_seconds;
    const validation = validateJustification(justification);
    const context = {
      role: key.role,
      duration_seconds: durationSeconds,
      has_reason: validation.has_reason,
      has_ticket_attachment: validation.has_ticket_attachment,
      break_glass: breakGlass,
    };
    const request: EnsureRequest = {
      durationSeconds,
      autoApprove: false,
      justification,
      validation,
      pendingTtlSeconds: limits.pending_request_ttl_seconds,
      reviewDiagnostics: [],
      notifications: notificationsOf(tenant),
    };
    if (tenant.accounts_only && !Object.hasOwn(tenant.accounts, accountId)) {
      const notice = `${key.target} is not one of this tenant's accounts: only the accounts its configuration lists may be targets.`;
      return { key, request, denied: true, notices: [notice], policyIds: [] as string[] };
    }
    if (durationSeconds > limits.max_duration_seconds) {
      const notice = `${key.role} on ${key.target}: at most ${limits.max_duration_seconds} seconds may be requested (asked for ${durationSeconds}).`;
      return { key, request, denied: true, notices: [notice], policyIds: [] as string[] };
    }
    const asked = this.decideFor(tenant, principal, 'request', key, context);
    if (!asked.allowed) {
      const notices = asked.notices.length > 0 ? asked.notices : [`No policy allows ${principal.id} to request ${key.role} on ${key.target}.`];
      return { key, request, denied: true, notices, policyIds: asked.policyIds };
    }
    const activate = this.decideFor(tenant, principal, 'activate', key, context);
    request.autoApprove = activate.allowed;
    if (breakGlass) {
      // Break-glass is access at once or nothing: a role policy would only let one ask for is refused.
      if (!activate.allowed) {
        const notices = activate.notices.length > 0 ? activate.notices : [`No policy allows ${principal.id} to break the glass for ${key.role} on ${key.target}.`];
        return { key, request, denied: true, notices };
      }
      request.breakGlass = true;
      request.accessRequestId = accessRequestId;
      request.approvalsRequired = this.policySet(tenant).approvalsRequired(asked.policyIds);
    }
    if (!request.autoApprove) {
      const approvalsRequired = this.policySet(tenant).approvalsRequired(asked.policyIds);
      request.accessRequestId = accessRequestId;
      request.approvalsRequired = approvalsRequired;
      const needs = approvalsRequired === 1 ? 'approval by a reviewer' : `${approvalsRequired} approvals, each by a different reviewer`;
      request.reviewDiagnostics = [
        {
          level: 'info',
          code: 'review_required',
          message: `${key.role} on ${key.target} needs ${needs}.`,
          approvals_required: approvalsRequired,
          notices: asked.notices,
          policies: asked.policyIds,
        },
      ];
    }
    return { key, request, denied: false, notices: [] as string[], policyIds: [] as string[] };
  }

  /**
   * `found`: the grant's state as ensure found it before deciding the call. `predicted`: ensure
   * took the grant for an open one without asking (predictsExtension), and it was not: it is
   * asked now, and a call that then starts a grant is held to the open-grant limit after all.
   */
  private async ensureOne(caller: Caller, key: GrantKey, request: EnsureRequest, dryRun: boolean, found: Found, predicted = false): Promise<GrantView> {
    const workflowId = grantWorkflowId(key);
    const handle = this.client.workflow.getHandle<typeof grantWorkflow>(workflowId);
    if (predicted) {
      found = await this.currentState(workflowId, dryRun);
      if (startsGrant(found, request)) await this.checkOpenGrants(caller, 1);
    }
    for (let attempt = 1; ; attempt++) {
      const current = attempt === 1 ? found : await this.currentState(workflowId, dryRun);
      if (current !== undefined) {
        const open = unlessRevoked(current);
        const decision = decideEnsure(open, request, new Date());
        const extra: Diagnostic[] = decision.change === 'none' ? (decision.diagnostics ?? []) : [];
        // The read-only answers stay off the workflow's history.
        if (decision.change === 'none' && open) return toView(open, 'none', extra);
        if (dryRun) return toView(wouldBe(open, caller.principal, key, request, decision), decision.change, extra);
      }
      try {
        const outcome = await onceMoreIfTaskFailed(() =>
          this.client.workflow.executeUpdateWithStart(ensureUpdate, {
            args: [request],
            // A start operation is used once: the second try gets one of its own.
            startWorkflowOperation: new WithStartWorkflowOperation<typeof grantWorkflow>('grantWorkflow', {
              workflowId,
              taskQueue: env.taskQueue,
              args: [{ key, principal: caller.principal, grantId: randomUUID() }],
              workflowIdConflictPolicy: 'USE_EXISTING',
              ...uiSummary(caller.principal, key, request),
            }),
          }),
        );
        this.seen.set(workflowId, outcome.state);
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

  private currentState(workflowId: string, dryRun: boolean): Promise<Found> {
    const state = this.client.workflow.getHandle(workflowId).query(grantStateQuery);
    return state.then((st) => (this.seen.set(workflowId, st), st)).catch((err) => {
      if (err instanceof WorkflowNotFoundError) return null;
      // A grant busy with other calls has no room for one more query: the update decides the same
      // way, at the price of a few history events (continue-as-new bounds those).
      if (!dryRun && isQueryBufferFull(err)) return undefined;
      throw err;
    });
  }

  private decide(caller: Caller, action: PolicyAction, grant: GrantState): PolicyDecision {
    return this.decideFor(caller.tenant, caller.principal, action, grant.key, {
      role: grant.key.role,
      duration_seconds: grant.durationSeconds,
      has_reason: grant.validation.has_reason,
      has_ticket_attachment: grant.validation.has_ticket_attachment,
      break_glass: false,
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
      accountEnvironment: environmentOf(tenant, accountId),
      context,
    });
  }

  private policySet(tenant: TenantConfig): PolicySet {
    const set = this.policies.get(tenant.id);
    if (!set) throw new Error(`no policies loaded for tenant ${tenant.id}`);
    return set;
  }

  /**
   * Its requester, and whoever may review any of its grants: GET answers them as review does (a
   * reviewer of some of them is told by review which ones are not theirs; issue 19).
   */
  private seesRequest(caller: Caller, parts: RequestPart[]): boolean {
    return parts[0].state.key.principalId === caller.principal.id || parts.some((p) => this.mayReview(caller, p));
  }

  /**
   * Action `review` on what the request itself asks: an extension or break-glass follow-up with its
   * own duration, justification and kind, never the grant's first (a 12-hour extension of a
   * 1-hour grant is reviewed as 12 hours; issue 19).
   */
  private mayReview(caller: Caller, part: RequestPart): boolean {
    const validation = validateJustification(part.justification);
    return this.decideFor(caller.tenant, caller.principal, 'review', part.state.key, {
      role: part.state.key.role,
      duration_seconds: part.durationSeconds,
      has_reason: validation.has_reason,
      has_ticket_attachment: validation.has_ticket_attachment,
      break_glass: part.kind === 'break_glass',
    }).allowed;
  }

  /**
   * What the request's grants hold of it (404 if none in this tenant). A grant is found by its
   * latest request id (AccessRequestId); an earlier one of a grant that has since had a follow-up
   * (its original request, an earlier extension) by a bounded scan of the tenant's grants.
   */
  private async requestParts(tenant: TenantConfig, accessRequestId: string): Promise<RequestPart[]> {
    const partsOf = async (runs: { workflowId: string; runId: string }[]) => {
      const states = (await Promise.all(runs.map((run) => this.stateOf(run)))).filter((st): st is GrantState => st !== null);
      const now = new Date();
      return sortGrants(states)
        .map((st) => requestPartOf(st, accessRequestId, now))
        .filter((p): p is RequestPart => p !== null);
    };
    const parts = await whenVisible(async () => {
      const found = await partsOf(await this.findRuns(tenant, [equals(searchAttributes.requestId, accessRequestId)], 100));
      return found.length > 0 ? found : undefined;
    });
    if (parts) return parts;
    const scanned = await partsOf((await this.findRuns(tenant, [], REQUEST_SCAN_LIMIT)).filter((r) => r.requestId && r.requestId !== accessRequestId));
    if (scanned.length > 0) return scanned;
    throw notFound('access request');
  }

  /** The grant's state now, read from its key's latest run (the same grant while it is open). */
  private async latestState(state: GrantState): Promise<GrantState> {
    const now = await this.client.workflow
      .getHandle(grantWorkflowId(state.key))
      .query(grantStateQuery)
      .catch(() => null);
    return now && now.id === state.id ? now : state;
  }

  private async findRuns(tenant: TenantConfig, clauses: string[], limit: number) {
    // A run that continued as new is an earlier page of the same grant: its successor speaks for it.
    const query = [`WorkflowType = 'grantWorkflow'`, `ExecutionStatus != 'ContinuedAsNew'`, equals(searchAttributes.tenant, tenant.id), ...clauses].join(' AND ');
    const runs: { workflowId: string; runId: string; requestId?: string; status?: string }[] = [];
    for await (const info of this.client.workflow.list({ query, pageSize: Math.min(limit, 200) })) {
      const requestId = info.typedSearchAttributes.get(searchAttributes.requestId);
      runs.push({ workflowId: info.workflowId, runId: info.runId, requestId, status: info.typedSearchAttributes.get(searchAttributes.status) });
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
    const found = await whenVisible(async () => {
      const [run] = await this.findRuns(tenant, [clause], 1);
      const state = run ? await this.stateOf(run) : null;
      return run && state ? { run, state } : undefined;
    });
    if (!found) throw notFound(what);
    return found;
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

/** Whether ensuring `request` on a grant found so would start a new one (not extend or answer one). */
function startsGrant(found: Found, request: EnsureRequest): boolean {
  if (found === undefined) return false;
  const open = unlessRevoked(found);
  return (!open || !isOpen(open)) && decideEnsure(open, request, new Date()).change !== 'none';
}

/**
 * A grant being revoked is over for an ensure: its update is refused as closing, and the call
 * waits for the run to close and starts a new grant.
 */
function unlessRevoked(state: GrantState | null): GrantState | null {
  return state?.revocation ? null : state;
}

function notificationsOf(tenant: TenantConfig): EnsureRequest['notifications'] {
  const { webhooks, expiry_warning_seconds } = tenant.notifications;
  if (webhooks.length === 0) return undefined;
  return { events: [...new Set(webhooks.flatMap((w) => w.events))], expiryWarningSeconds: expiry_warning_seconds };
}

function wouldBe(current: GrantState | null, principal: Principal, key: GrantKey, req: EnsureRequest, decision: { change: GrantChange; expiresAt?: string | null }): GrantState {
  const state = current && isOpen(current) ? structuredClone(current) : newGrantState(key, principal, DRY_RUN_GRANT_ID);
  state.validation = current && isOpen(current) ? state.validation : req.validation;
  if (decision.change === 'activated') {
    Object.assign(state, { status: 'provisioning', approved: true, durationSeconds: req.durationSeconds });
  } else if (decision.change === 'requested' && current && isOpen(current)) {
    // An extension request: the grant stays as it is until a reviewer approves; no request exists yet.
    Object.assign(state, { accessRequestId: null, followUps: [] });
    state.diagnostics = [...state.diagnostics, ...req.reviewDiagnostics];
  } else if (decision.change === 'requested') {
    Object.assign(state, { status: 'pending', durationSeconds: req.durationSeconds });
    state.diagnostics = req.reviewDiagnostics;
  }
  if (req.breakGlass && (decision.change === 'activated' || decision.change === 'extended')) {
    state.diagnostics = [
      ...state.diagnostics,
      { level: 'warning', code: 'break_glass', message: 'Break-glass access: it would be active without review, announced, and reviewers asked to acknowledge it; a denial revokes it at once.' },
    ];
  } else if (decision.change === 'extended') {
    // Still provisioning (no expiresAt yet): only the duration grows.
    Object.assign(state, { expiresAt: decision.expiresAt ?? state.expiresAt, durationSeconds: req.durationSeconds });
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
  const how = req.breakGlass ? 'break-glass' : req.autoApprove ? 'auto-approved' : 'needs review';
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

/**
 * Temporal's answers (WorkflowNotReady, FAILED_PRECONDITION) when the workflow task that carried an
 * update failed ("unexpected workflow task failure"), or when the grant's workflow task is still
 * failing ("Workflow Task in failed state"): the update changed nothing.
 */
function isWorkflowTaskFailure(err: unknown): boolean {
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    if (isGrpcServiceError(cause) && cause.code === 9 && /workflow task/i.test(cause.message)) return true;
  }
  return false;
}

/** Answered when an update's workflow task failed (twice, for an ensure): a 503 the client may retry. */
function taskFailedError(): AccessError {
  return new AccessError('unavailable', 'The grant could not take this call just now (its workflow task failed); nothing was changed. Try again.', {}, 1);
}

const UNAVAILABLE_GRPC_CODES = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

/**
 * The 503 for a Temporal that cannot be reached, or is there but cannot answer this call now:
 * RESOURCE_EXHAUSTED (a grant's query buffer, a rate limit of the server's), or a grant whose
 * workflow task is failing. Undefined for any other error.
 */
export function temporalUnavailableError(err: unknown): AccessError | undefined {
  if (isWorkflowTaskFailure(err)) return taskFailedError();
  if (grpcCodeOf(err) === 8) return new AccessError('unavailable', 'Temporal is busy with this grant or this tenant just now; nothing was changed. Try again.', {}, 1);
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'number' && UNAVAILABLE_GRPC_CODES.has(code)) return new AccessError('unavailable', 'Temporal cannot be reached; try again.');
  }
  return undefined;
}

/**
 * The failure of a multi-entitlement call after some of its entitlements took effect: the same
 * error, with the grants that changed in `details.changed` (and named in the message), so the
 * caller knows what a retry will find.
 */
function withChanged(err: unknown, changed: GrantView[]): AccessError {
  const failure = err instanceof AccessError ? err : (temporalUnavailableError(err) ?? new AccessError('internal', 'Something went wrong on our side; nothing was lost. Try again.'));
  const names = changed.map((g) => `${g.name} (${g.change})`).join(', ');
  return Object.assign(
    new AccessError(
      failure.code,
      `${failure.message} Before it failed, the call changed ${names}.`,
      { ...failure.extra, details: { ...failure.extra.details, changed: changed.map((g) => ({ id: g.id, target: g.target, role: g.role, change: g.change, status: g.status })) } },
      failure.retryAfterSeconds,
    ),
    { cause: err },
  );
}

/**
 * An ensure is idempotent, so one whose workflow task failed (which changed nothing) is sent once
 * more; a second failure is a 503 with Retry-After (temporalUnavailableError), never a 500
 * (issue 24: under load the SDK's core can fail a task that carries an update).
 */
async function onceMoreIfTaskFailed<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!isWorkflowTaskFailure(err)) throw err;
  }
  // Time for Temporal to retry the failed task (without this update), which usually succeeds.
  await delay(TASK_RETRY_DELAY_MS);
  return call();
}

const TASK_RETRY_DELAY_MS = 500;

function rejectionType(err: unknown): string | undefined {
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

async function rejectionsAsErrors<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new AccessError('conflict', 'The grant has already closed.');
    // A review or revoke is not repeated for the caller: they see it failed and may send it again.
    if (isWorkflowTaskFailure(err)) throw taskFailedError();
    const type = rejectionType(err);
    const message = (err as WorkflowUpdateFailedError).cause?.message ?? '';
    if (type === rejection.selfReview) throw new AccessError('forbidden', message);
    if (type === rejection.notPending || type === rejection.notOpen || type === rejection.alreadyApproved) throw new AccessError('conflict', message);
    throw err;
  }
}

function sortGrants(states: GrantState[]): GrantState[] {
  return [...states].sort((a, b) => grantName(a.key).localeCompare(grantName(b.key)));
}

/** Newest first: by creation time, then id (both descending), so pages never overlap. */
function newestFirst(a: Pick<AccessRequestView, 'created_at' | 'id'>, b: Pick<AccessRequestView, 'created_at' | 'id'>): number {
  return b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id);
}

/** The cursor is the last listed request's (created_at, id), opaque to clients. */
function encodeCursor(last: AccessRequestView): string {
  return Buffer.from(JSON.stringify({ c: last.created_at, i: last.id })).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const { c, i } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { c: unknown; i: unknown };
    if (typeof c === 'string' && !Number.isNaN(Date.parse(c)) && typeof i === 'string' && /^[0-9a-f-]{36}$/.test(i)) return { createdAt: c, id: i };
  } catch {
    // Falls through to the error below.
  }
  throw new AccessError('invalid_request', 'The cursor is not one this API gave (use next_cursor as it is).');
}

function notFound(what: string): AccessError {
  return new AccessError('not_found', `No such ${what} in this tenant.`);
}

/** Asks `find` until it answers or VISIBILITY_WAIT_MS has passed: a run made a moment ago may not be listed yet. */
async function whenVisible<T>(find: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + VISIBILITY_WAIT_MS;
  for (;;) {
    const found = await find();
    if (found !== undefined || Date.now() > deadline) return found;
    await delay(250);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
