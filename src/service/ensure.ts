// An ensure call: each entitlement validated and authorised, then the call's grants started,
// extended or answered as they are, all or nothing.
import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { LRUCache } from 'lru-cache';
import { env, grantableGroup, ownAccountsOnly, type TenantConfig } from '../config';
import type { AuditRecord } from '../domain/audit';
import { AccessError } from '../domain/errors';
import { newId } from '../domain/ids';
import {
  accountIdOf,
  decideEnsure,
  type Diagnostic,
  encodePrincipal,
  type EnsureRequest,
  type GrantChange,
  type GrantKey,
  type GrantState,
  type GrantView,
  GROUP_ROLE,
  GROUP_TARGET_PREFIX,
  groupOf,
  groupSessionWarning,
  grantName,
  grantWorkflowId,
  isOpen,
  type Justification,
  scheduledDiagnostic,
  newGrantState,
  sessionMayOutliveGrant,
  OPEN_STATUSES,
  type Principal,
  toView,
  validateJustification,
} from '../domain/grant';
import { type Facts, factNotices, SHORTEST_SHIFT_GRANT_SECONDS, shiftSecondsLeft } from '../domain/facts';
import { markdownText } from '../domain/text';
import { FactSources } from '../integrations';
import type { grantWorkflow } from '../workflows/grant';
import { type EnsureOutcome, ensureUpdate, GRANT_MEMO, grantStateQuery, rejection, searchAttributes } from '../workflows/messages';
import { policyContext } from '../policy/context';
import { allBounded, type Caller, equals, type GrantRuns, pause, settledBounded } from './runs';
import { grpcCodeOf, isQueryBufferFull, onceMoreIfTaskFailed, rejectionType, temporalUnavailableError } from './temporal-errors';

export interface EnsureInput {
  entitlements: { target: string; role: string; duration_seconds?: number }[];
  justification?: Justification;
  dry_run?: boolean;
  break_glass?: boolean;
  starts_at?: string;
}

/** One entitlement of a call, decided: refused (with why), or the request to send its grant. */
interface PlannedEntitlement {
  key: GrantKey;
  request: EnsureRequest;
  denied: boolean;
  notices: string[];
  policyIds: readonly string[];
  /** Said in the answer beside the grant's own diagnostics when the call changes it. */
  diagnostics: Diagnostic[];
  /** Tied to the requester's shift: the request for review of the time past it, should the shift's cap extend nothing. */
  pastShift?: EnsureRequest;
}

/** Id of the grant a dry run would make: no grant exists yet, so none is invented. */
export const DRY_RUN_GRANT_ID = '00000000-0000-0000-0000-000000000000';

/** A grant's state as ensure finds it: null when there is none, undefined when it is too busy to say. */
type Found = GrantState | null | undefined;

/**
 * How long this API process remembers a grant's state from its own answers. Only to skip the query
 * before an ensure that it predicts will extend the grant (the workflow decides anyway): a state
 * older than this is asked for again.
 */
const SEEN_FOR_MS = 5 * 60_000;

/** How long an extension's answer waits for its audit event's write (the grant writes it later regardless). */
const HANDED_OFF_WAIT_MS = 1_000;

/** Writes an audit event; never throws (a failure is counted and logged by whoever made it). */
export type RecordAudit = (record: AuditRecord) => Promise<void>;

export class EnsureService {
  /** Each grant's latest state as this process saw it, by workflow id (see SEEN_FOR_MS). */
  private readonly seen = new LRUCache<string, GrantState>({ max: 10_000, ttl: SEEN_FOR_MS });

  constructor(
    private readonly runs: GrantRuns,
    private readonly recordAudit: RecordAudit = async () => {},
    private readonly sources: FactSources = new FactSources([]),
  ) {}

  /** `requestId`: the HTTP request's (X-Request-ID), kept in an ensure_denied event as data, never as its id. */
  async ensure(caller: Caller, input: EnsureInput, requestId: string = randomUUID()): Promise<GrantView[]> {
    // One access request per call, for every entitlement of it that needs review.
    const accessRequestId = newId();
    const calledAt = new Date();
    const startsAt = laterStart(caller.tenant, input.starts_at, calledAt);
    const justification = input.justification ?? {};
    // Asked once per call, each source within its deadline: what policies decide every entitlement on.
    const [sessionSeconds, facts] = await Promise.all([this.runs.sessionSeconds(caller.tenant.id), this.sources.facts(caller.tenant.id, asked(caller), justification)]);
    const planned = input.entitlements.map((e) =>
      this.authorizeEntitlement(caller, e, justification, accessRequestId, input.break_glass ?? false, startsAt, calledAt, sessionSeconds, facts),
    );
    // A group named by its name and by its id in one call: the same grant twice.
    const twice = planned.find((p, i) => planned.findIndex((q) => q.key.target === p.key.target && q.key.role === p.key.role) !== i);
    if (twice) throw new AccessError('invalid_request', `${twice.key.role} on ${twice.key.target} is asked for twice (by the group's name and by its id); nothing was changed.`);
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
      // The rule (each denied entitlement's determining policies) and the facts behind it.
      throw new AccessError('forbidden', 'Policy does not allow every entitlement; nothing was changed.', {
        details: { denied: denied.map((p) => ({ target: p.key.target, role: p.key.role, policies: p.policyIds })) },
        notices: [...new Set([...denied.flatMap((p) => p.notices), ...factNotices(facts)])],
      });
    }
    const dryRun = input.dry_run ?? false;
    // One entitlement only: with more, a fallback refused by the open-grant limit (ensureOne) would
    // come after another entitlement of the call had already changed, and the call is all-or-nothing.
    // Not one tied to a shift: whether it extends anything is decided on the grant as found (below).
    const extending = planned.map((p) => planned.length === 1 && !dryRun && !p.pastShift && this.predictsExtension(grantWorkflowId(p.key), p.request));
    // Bounded: a call of MAX_ENTITLEMENTS asks about its grants a few dozen at a time.
    const found = await allBounded(planned, (p, i) => (extending[i] ? Promise.resolve(undefined) : this.currentState(grantWorkflowId(p.key), dryRun)));
    // An active grant already lasting to the shift's end: the cap extends nothing, so the time past
    // it is asked of a reviewer (issue 40 §1: an extension past the shift needs the next shift or a review).
    planned.forEach((p, i) => {
      const open = found[i] ? unlessRevoked(found[i]) : null;
      if (p.pastShift && open && decideEnsure(open, p.request, calledAt).change === 'none' && decideEnsure(open, { ...p.pastShift, autoApprove: true }, calledAt).change === 'extended') {
        p.request = p.pastShift;
        p.diagnostics = [];
      }
    });
    const sharing = planned.filter((p) => p.request.accessRequestId === accessRequestId);
    for (const p of sharing) p.request.requestGrants = sharing.length;
    const starting = planned.filter((p, i) => startsGrant(found[i], p.request)).length;
    if (starting > 0) await this.checkOpenGrants(caller, starting);
    if (starting > 0 && startsAt) await this.checkScheduledGrants(caller, starting);
    const settled = await settledBounded(
      planned,
      async (p, i) => (extending[i] && (await this.extend(p.key, p.request))) || this.ensureOne(caller, p.key, p.request, dryRun, found[i], extending[i]),
    );
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) {
      const changed = settled.flatMap((r) => (r.status === 'fulfilled' && r.value.change !== 'none' ? [r.value] : []));
      throw changed.length > 0 ? withChanged(failed.reason, changed) : failed.reason;
    }
    const views = settled.map((r) => (r as PromiseFulfilledResult<GrantView>).value);
    // `validation` answers this call's justification, not the one the grant was first asked with.
    return views.map((view, i) => ({
      ...view,
      validation: planned[i].request.validation,
      diagnostics: [...withSessionWarning(caller.tenant, view, sessionSeconds[view.role]), ...(view.change === 'none' ? [] : planned[i].diagnostics)],
    }));
  }

  /** Whether this process last saw the grant active, open, and ending before `request` would have it end. */
  private predictsExtension(workflowId: string, request: EnsureRequest): boolean {
    const open = unlessRevoked(this.seen.get(workflowId) ?? null);
    return open?.status === 'active' && decideEnsure(open, request, new Date()).change === 'extended';
  }

  /**
   * The audit events the grant handed back (an extension's), written before the call answers, so
   * the trail shows them at once; the answer waits a second at most. A write that fails is only
   * logged: the grant writes them too at its next wake, at the latest when it ends.
   */
  private async writeHandedOff(outcome: EnsureOutcome): Promise<void> {
    if (!outcome.audit?.length) return;
    const written = Promise.all(outcome.audit.map((record) => this.recordAudit(record)));
    await Promise.race([written, pause(HANDED_OFF_WAIT_MS)]);
  }

  /**
   * An extension sent straight to the running grant, as one update (no query first, nothing
   * started). Undefined when the grant is no longer running or is being closed: the usual path
   * then finds out what it is.
   */
  private async extend(key: GrantKey, request: EnsureRequest): Promise<GrantView | undefined> {
    const workflowId = grantWorkflowId(key);
    this.runs.changing(workflowId, request.accessRequestId);
    try {
      const outcome = await onceMoreIfTaskFailed(() =>
        this.runs.client.workflow.getHandle<typeof grantWorkflow>(workflowId).executeUpdate(ensureUpdate, { args: [request] }),
      );
      this.seen.set(workflowId, outcome.state);
      await this.writeHandedOff(outcome);
      return toView(outcome.state, outcome.change, outcome.diagnostics);
    } catch (err) {
      this.seen.delete(workflowId);
      if (err instanceof WorkflowNotFoundError || grpcCodeOf(err) === 5 || rejectionType(err) === rejection.closing) return undefined;
      throw err;
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
    const open = starting > limit ? 0 : (await this.runs.client.workflow.count(query)).count;
    if (open + starting > limit) {
      throw new AccessError('forbidden', `At most ${limit} open grants per principal; nothing was changed.`, {
        details: { max_open_per_principal: limit, open, starting },
        notices: [`You may hold at most ${limit} open grants in this tenant: you hold ${open}, and this call would start ${starting} more.`],
      });
    }
  }

  /** `grants.max_scheduled_per_principal`: scheduled grants not yet begun count against it (read from their memos: at most max_open_per_principal rows). */
  private async checkScheduledGrants({ tenant, principal }: Caller, starting: number): Promise<void> {
    const limit = tenant.grants.max_scheduled_per_principal;
    if (limit === undefined) return;
    const pending = starting > limit ? [] : await this.runs.all(tenant, [`ExecutionStatus = 'Running'`, equals(searchAttributes.principal, encodePrincipal(principal.id)), equals(searchAttributes.status, 'pending')]);
    const scheduled = pending.filter((row) => row.state.startsAt).length;
    if (scheduled + starting > limit) {
      throw new AccessError('forbidden', `At most ${limit} scheduled grants per principal; nothing was changed.`, {
        details: { max_scheduled_per_principal: limit, scheduled, starting },
        notices: [`You may hold at most ${limit} scheduled grants in this tenant: you hold ${scheduled}, and this call would schedule ${starting} more.`],
      });
    }
  }

  private authorizeEntitlement(
    caller: Caller,
    entitlement: EnsureInput['entitlements'][number],
    justification: Justification,
    accessRequestId: string,
    breakGlass: boolean,
    startsAt: string | undefined,
    calledAt: Date,
    sessionSeconds: Record<string, number>,
    facts: Facts,
  ): PlannedEntitlement {
    const { tenant, principal } = caller;
    const key: GrantKey = { tenantId: tenant.id, principalId: principal.id, target: entitlement.target, role: entitlement.role };
    const limits = tenant.grants;
    const groupAsked = groupOf(key.target);
    // A group named by its id is the same grant as by its name: the key keeps the name.
    const group = groupAsked === undefined ? undefined : grantableGroup(tenant, groupAsked);
    if (group) key.target = GROUP_TARGET_PREFIX + group.name;
    const durationSeconds = entitlement.duration_seconds ?? limits.default_duration_seconds;
    const validation = { ...validateJustification(justification), ...facts };
    const context = policyContext({ role: key.role, durationSeconds, justification, breakGlass, startsAt, askedAt: calledAt, facts }, sessionSeconds);
    const request: EnsureRequest = {
      durationSeconds,
      autoApprove: false,
      justification,
      validation,
      pendingTtlSeconds: limits.pending_request_ttl_seconds,
      reviewDiagnostics: [],
      notifications: notificationsOf(tenant),
      ...(startsAt && { startsAt }),
    };
    if (groupAsked !== undefined && !group) {
      const notice = `${key.target} is not a grantable group of this tenant: only the groups its configuration lists under groups may be targets.`;
      return { key, request, denied: true, notices: [notice], policyIds: [], diagnostics: [] };
    }
    if (group && key.role !== GROUP_ROLE) {
      const notice = `${key.target}: a group grant's role is "${GROUP_ROLE}" (membership of the group), not "${key.role}".`;
      return { key, request, denied: true, notices: [notice], policyIds: [], diagnostics: [] };
    }
    if (!group && ownAccountsOnly(tenant) && !this.runs.accountOf(tenant, accountIdOf(key.target)).owned) {
      const notice = !tenant.organization
        ? `${key.target} is not one of this tenant's accounts: only the accounts its configuration lists may be targets.`
        : this.runs.organization(tenant.id)
          ? `${key.target} is not one of this tenant's accounts: only the accounts its configuration lists, and the active accounts in its organization (as last read), may be targets.`
          : `${key.target} is not one of this tenant's accounts as far as is known: its organization has not been read yet (try again in a minute).`;
      return { key, request, denied: true, notices: [notice], policyIds: [], diagnostics: [] };
    }
    if (durationSeconds > limits.max_duration_seconds) {
      const notice = `${key.role} on ${key.target}: at most ${limits.max_duration_seconds} seconds may be requested (asked for ${durationSeconds}).`;
      return { key, request, denied: true, notices: [notice], policyIds: [], diagnostics: [] };
    }
    const asked = this.runs.decide(caller, 'request', key, context);
    if (!asked.allowed) {
      const notices = asked.notices.length > 0 ? [...asked.notices] : [`No policy allows ${principal.id} to request ${key.role} on ${key.target}.`];
      return { key, request, denied: true, notices, policyIds: asked.policyIds, diagnostics: [] };
    }
    const activate = this.runs.decide(caller, 'activate', key, context);
    request.autoApprove = activate.allowed;
    const policies = this.runs.policySet(tenant);
    // @until_shift_end: what the permit gives ends with the requester's on-call shift.
    let pastShift: EnsureRequest | undefined;
    const diagnostics: Diagnostic[] = [];
    const shiftNotices: string[] = [];
    if (activate.allowed && !breakGlass && policies.untilShiftEnd(activate.policyIds)) {
      const begins = startsAt ? new Date(startsAt) : calledAt;
      const left = shiftSecondsLeft(facts.oncall, begins);
      const until = facts.oncall?.until;
      if (left !== null && left < SHORTEST_SHIFT_GRANT_SECONDS) {
        request.autoApprove = false;
        shiftNotices.push(
          facts.oncall?.status === 'on_call'
            ? `Your on-call shift ends at ${until}: ${key.role} past it needs a reviewer's approval (or ask again on your next shift).`
            : `${key.role} without review is for whoever is on call, until their shift ends; you are not on call now, so a reviewer decides.`,
        );
      } else if (left !== null) {
        if (left < durationSeconds) {
          request.durationSeconds = left;
          diagnostics.push({
            level: 'info',
            code: 'until_shift_end',
            message: `${key.role} on ${key.target} ends with your on-call shift, at ${until}: ${left} of the ${durationSeconds} seconds asked for. Past it, ask again on your next shift, or a reviewer decides.`,
            shift_ends_at: until,
          });
        }
        pastShift = { ...request, durationSeconds, autoApprove: false };
        this.needsReview(pastShift, asked, accessRequestId, caller, key, [`Your grant already lasts until your on-call shift ends (${until}): the time past it needs a reviewer's approval.`]);
      }
    }
    if (breakGlass) {
      // Break-glass is access at once or nothing: a role policy would only let one ask for is refused.
      if (!activate.allowed) {
        const notices = activate.notices.length > 0 ? [...activate.notices] : [`No policy allows ${principal.id} to break the glass for ${key.role} on ${key.target}.`];
        return { key, request, denied: true, notices, policyIds: activate.policyIds, diagnostics: [] };
      }
      request.breakGlass = true;
      request.accessRequestId = accessRequestId;
      request.approvalsRequired = policies.approvalsRequired(asked.policyIds);
    }
    // Why not at once: the forbids that refused `activate` (their advice), the shift, the facts.
    const whyReview = [...(activate.allowed ? [] : activate.notices), ...shiftNotices, ...factNotices(facts)];
    if (!request.autoApprove) this.needsReview(request, asked, accessRequestId, caller, key, whyReview);
    return { key, request, denied: false, notices: [], policyIds: [], diagnostics: [...diagnostics, ...unknownFacts(facts)], pastShift };
  }

  /** Makes `request` one for review: by how many reviewers its `request` decision's policies say, and why (their advice, then `why`). */
  private needsReview(request: EnsureRequest, asked: { policyIds: readonly string[]; notices: readonly string[] }, accessRequestId: string, caller: Caller, key: GrantKey, why: string[]): void {
    const approvalsRequired = this.runs.policySet(caller.tenant).approvalsRequired(asked.policyIds);
    request.accessRequestId = accessRequestId;
    request.approvalsRequired = approvalsRequired;
    const needs = approvalsRequired === 1 ? 'approval by a reviewer' : `${approvalsRequired} approvals, each by a different reviewer`;
    request.reviewDiagnostics = [
      {
        level: 'info',
        code: 'review_required',
        message: `${key.role} on ${key.target} needs ${needs}.`,
        approvals_required: approvalsRequired,
        notices: [...new Set([...asked.notices, ...why])],
        policies: [...asked.policyIds],
      },
    ];
  }

  /**
   * `found`: the grant's state as ensure found it before deciding the call. `predicted`: ensure
   * took the grant for an open one without asking (predictsExtension), and it was not: it is
   * asked now, and a call that then starts a grant is held to the open-grant limit after all.
   */
  private async ensureOne(caller: Caller, key: GrantKey, request: EnsureRequest, dryRun: boolean, found: Found, predicted = false): Promise<GrantView> {
    const workflowId = grantWorkflowId(key);
    const handle = this.runs.client.workflow.getHandle<typeof grantWorkflow>(workflowId);
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
        const grantId = newId();
        this.runs.changing(workflowId, grantId, request.accessRequestId);
        const outcome = await onceMoreIfTaskFailed(() =>
          this.runs.client.workflow.executeUpdateWithStart(ensureUpdate, {
            args: [request],
            // A start operation is used once: the second try gets one of its own.
            startWorkflowOperation: new WithStartWorkflowOperation<typeof grantWorkflow>('grantWorkflow', {
              workflowId,
              taskQueue: env.taskQueue,
              args: [{ key, principal: caller.principal, grantId }],
              // What the read side shows of it until its first step: never a run without a memo.
              memo: { [GRANT_MEMO]: newGrantState(key, caller.principal, grantId) },
              workflowIdConflictPolicy: 'USE_EXISTING',
              ...uiSummary(caller.principal, key, request),
            }),
          }),
        );
        this.seen.set(workflowId, outcome.state);
        await this.writeHandedOff(outcome);
        return toView(outcome.state, outcome.change, outcome.diagnostics);
      } catch (err) {
        // The grant is being closed: once its run ends, the next attempt starts a new grant.
        if (rejectionType(err) === rejection.closing) {
          if (attempt < 3) {
            await Promise.race([handle.result().catch(() => undefined), pause(30_000)]);
            continue;
          }
          throw new AccessError('conflict', `${grantName(key)}: the grant is still being closed (its access is being removed); try again once it has closed.`);
        }
        // The run continued as new before it took the update (NOT_FOUND): ask its successor.
        if (attempt < 5 && grpcCodeOf(err) === 5) {
          await pause(100 * attempt);
          continue;
        }
        throw err;
      }
    }
  }

  private currentState(workflowId: string, dryRun: boolean): Promise<Found> {
    const state = this.runs.client.workflow.getHandle(workflowId).query(grantStateQuery);
    return state.then((st) => (this.seen.set(workflowId, st), st)).catch((err) => {
      if (err instanceof WorkflowNotFoundError) return null;
      // A grant busy with other calls has no room for one more query: the update decides the same
      // way, at the price of a few history events (continue-as-new bounds those).
      if (!dryRun && isQueryBufferFull(err)) return undefined;
      throw err;
    });
  }
}

/**
 * The call's `starts_at`, as the grant keeps it (UTC), when it is later than the call; a start
 * already past is now. Further ahead than the tenant allows is bad input: nothing changes.
 */
function laterStart(tenant: TenantConfig, startsAt: string | undefined, calledAt: Date): string | undefined {
  if (startsAt === undefined) return undefined;
  const at = Date.parse(startsAt);
  if (at <= calledAt.getTime()) return undefined;
  const limit = tenant.grants.max_schedule_ahead_seconds;
  if (at - calledAt.getTime() > limit * 1000) {
    const latest = new Date(calledAt.getTime() + limit * 1000).toISOString();
    throw new AccessError('invalid_request', `starts_at may be at most ${limit} seconds ahead (${latest}); nothing was changed.`, {
      details: { starts_at: startsAt, max_schedule_ahead_seconds: limit, latest },
    });
  }
  return new Date(at).toISOString();
}

/**
 * The answer's diagnostics, with `session_may_outlive_grant` whenever the API knows the permission
 * set's session duration (as policies see it): the requester hears it before the grant is made,
 * not only once it is active (when the worker, reading AWS, notes it on the grant).
 */
function withSessionWarning(tenant: TenantConfig, view: GrantView, sessionSeconds: number | undefined): Diagnostic[] {
  const group = groupOf(view.target);
  if (group !== undefined) {
    if (view.diagnostics.some((d) => d.code === 'session_may_outlive_grant')) return view.diagnostics;
    return [...view.diagnostics, groupSessionWarning(group, grantableGroup(tenant, group)?.brings ?? [])];
  }
  if (tenant.aws.revoke_sessions || !sessionSeconds || view.diagnostics.some((d) => d.code === 'session_may_outlive_grant')) return view.diagnostics;
  const warning = sessionMayOutliveGrant(sessionSeconds, view.duration_seconds);
  return warning ? [...view.diagnostics, warning] : view.diagnostics;
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
  if (decision.change === 'activated' && req.startsAt) {
    Object.assign(state, { status: 'pending', approved: true, durationSeconds: req.durationSeconds, startsAt: req.startsAt });
    state.diagnostics = [scheduledDiagnostic(req.startsAt)];
  } else if (decision.change === 'activated') {
    Object.assign(state, { status: 'provisioning', approved: true, durationSeconds: req.durationSeconds, startsAt: null });
    state.diagnostics = state.diagnostics.filter((d) => d.code !== 'scheduled' && d.code !== 'review_required' && d.code !== 'approvals');
  } else if (decision.change === 'requested' && current && isOpen(current)) {
    // An extension request: the grant stays as it is until a reviewer approves; no request exists yet.
    Object.assign(state, { accessRequestId: null, followUps: [] });
    state.diagnostics = [...state.diagnostics, ...req.reviewDiagnostics];
  } else if (decision.change === 'requested') {
    Object.assign(state, { status: 'pending', durationSeconds: req.durationSeconds, startsAt: req.startsAt ?? null });
    state.diagnostics = [...(req.startsAt ? [scheduledDiagnostic(req.startsAt)] : []), ...req.reviewDiagnostics];
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
 * The Web UI's summary and details of a grant's workflow (Markdown), fixed at its start. When
 * access ends is in the AccessExpiresAt column and the workflow's current details.
 */
function uiSummary(principal: Principal, key: GrantKey, req: EnsureRequest): { staticSummary: string; staticDetails: string } {
  // The Web UI renders these as Markdown: what the requester wrote, and the names in their token,
  // are escaped so that they read as themselves and not as the service's own headings or links.
  const who = principal.email ? `${markdownText(principal.id)} (${markdownText(principal.email)})` : markdownText(principal.id);
  const role = markdownText(key.role);
  const hours = req.durationSeconds % 3600 === 0 ? `${req.durationSeconds / 3600}h` : `${req.durationSeconds}s`;
  const how = [req.breakGlass ? 'break-glass' : req.autoApprove ? 'auto-approved' : 'needs review', ...(req.startsAt ? [`starts ${req.startsAt}`] : [])].join(', ');
  const { reason, attachments = [] } = req.justification;
  const details = [
    `**${role}** on \`${key.target}\` for ${who}, ${hours} once active (${how}).`,
    `Tenant \`${key.tenantId}\`.`,
    ...(reason?.trim() ? [`Reason: ${markdownText(reason.trim().slice(0, 500))}`] : []),
    ...(attachments.length > 0 ? [`Attachments: ${attachments.slice(0, 5).map(markdownText).join(', ')}`] : []),
  ];
  return { staticSummary: `${who}: ${role} on ${groupOf(key.target) ?? accountIdOf(key.target)} for ${hours} (${how})`, staticDetails: details.join('\n\n') };
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
 * Whom the sources are asked about: the requester, by an email their identity provider has not
 * said is unverified (anyone may put another's address on an account at some providers, and claim
 * their shifts and tickets).
 */
function asked({ principal, emailUnverified }: Caller): { id: string; email?: string } {
  return { id: principal.id, ...(!emailUnverified && principal.email !== undefined && { email: principal.email }) };
}

/** A warning per source that did not answer: the requester hears that policies decided without it (issue 40 §1). */
function unknownFacts({ oncall, ticket }: Facts): Diagnostic[] {
  const unknown: Diagnostic[] = [];
  if (oncall && oncall.source !== 'none' && oncall.status === 'unknown') {
    unknown.push({ level: 'warning', code: 'oncall_unknown', message: `Whether you are on call is unknown: ${oncall.note ?? 'no answer'}. Policies decided without it.`, source: oncall.source });
  }
  if (ticket && ticket.status === 'unknown') {
    unknown.push({ level: 'warning', code: 'ticket_unknown', message: `Ticket ${ticket.key} is unknown: ${ticket.note ?? 'no answer'}. Policies decided without it.`, source: ticket.source });
  }
  return unknown;
}
