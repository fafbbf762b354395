// One grant's whole life: pending -> provisioning -> active -> expired, or revoked from any
// open state. Deterministic code only; all I/O is in activities.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { AssignmentLookup, GrantActivities } from '../activities';
import type { AuditActivities } from '../activities/audit';
import type { Notification, NotifyActivities } from '../activities/notify';
import {
  accountIdOf,
  alreadyDecided,
  approvedAsAnother,
  currentRequestId,
  decideEnsure,
  encodePrincipal,
  type FollowUp,
  followUpPending,
  type Decision,
  type Diagnostic,
  type EnsureRequest,
  isOpen,
  newGrantState,
  personOf,
  type GrantState,
  type NotificationEvent,
  type Review,
  type Revocation,
} from '../domain/grant';
import type { AuditActor, AuditEventName, AuditRecord } from '../domain/audit';
import { markdownText } from '../domain/text';
import {
  approveSignal,
  AUDIT_TRAIL_PATCH,
  AUDIT_IN_TASK_PATCH,
  AUDIT_BATCHES_PATCH,
  EXTENSION_KEEPS_TIMER_PATCH,
  denySignal,
  ensureUpdate,
  type EnsureOutcome,
  EXPIRY_VISIBILITY_PATCH,
  FOLLOW_UP_REQUESTS_PATCH,
  OPERATOR_SAFE_RUNS_PATCH,
  PROVISIONING_EXTENSION_PATCH,
  reconcileUpdate,
  type ReconcileOutcome,
  grantStateQuery,
  type GrantWorkflowInput,
  type OperatorReview,
  rejection,
  reviewUpdate,
  revokeSignal,
  revokeUpdate,
  searchAttributes,
} from './messages';

const provisioning = proxyActivities<GrantActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  // Transient provider errors are retried for up to ten minutes; then the grant fails closed.
  scheduleToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

const restoring = proxyActivities<GrantActivities>({
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

// Deprovisioning never gives up: the workflow keeps calling until the assignment is gone. Each
// round is short (two attempts, each with the SDK's own retries), so a failing deletion shows as a
// `deprovisioning_retrying` diagnostic within seconds; the rounds then back off up to a minute.
const deprovisioning = proxyActivities<GrantActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 2 },
});

// Notifications are best effort and bounded: a dead webhook is given up after 30 seconds (so a
// closed grant's run ends soon after), and the workflow never waits for one before provisioning
// or deprovisioning.
const notifying = proxyActivities<NotifyActivities>({
  startToCloseTimeout: '10 seconds',
  scheduleToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '15 seconds' },
});

// The audit trail is written whatever it takes (no maximumAttempts), and the grant never waits
// for it: a store that is down delays only the record, never provisioning or expiry.
const auditing = proxyActivities<AuditActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

// Runs from before AUDIT_BATCHES_PATCH only: an extension's event, and the events at a grant's end,
// written by a local activity within the workflow task that made them. Under load such a task
// outlived its deadline while it carried an update's acceptance, and the SDK's core sent that
// acceptance twice (the workflow task failed; the ensure answered 500; issue 24).
const auditingInTask = proxyLocalActivities<AuditActivities>({
  startToCloseTimeout: '2 seconds',
  retry: { maximumAttempts: 1 },
});

/** A run that has not been given its first ensure within this time was started by mistake. */
const FIRST_ENSURE_TIMEOUT = '1 minute';
/** Audit events one activity writes at most (each is a few KB; an activity's input stays far below Temporal's limits). */
const AUDIT_BATCH_SIZE = 100;
/** Continue-as-new well before Temporal's own limits, so a hot grant's history stays small. */
const MAX_HISTORY_EVENTS = 2000;
/** Who revoked a grant whose workflow an operator cancelled (the cancellation carries no identity). */
const CANCELLED_BY_OPERATOR: Revocation = {
  revokedBy: 'an operator',
  reason: 'its workflow was cancelled in Temporal (Web UI or CLI)',
};

export async function grantWorkflow(input: GrantWorkflowInput): Promise<GrantState> {
  const state = input.state ?? newGrantState(input.key, input.principal, input.grantId);
  /** A run carried on by continue-as-new: what its first run did (notify reviewers) is not done again. */
  const continued = input.state !== undefined;
  /**
   * Cancellation is a revoke, and pending and provisioning runs continue-as-new. Histories from
   * before it replay the old way: a cancellation there ended the run where it stood.
   */
  const operatorSafe = patched(OPERATOR_SAFE_RUNS_PATCH);
  /** Audit events in batches by ordinary activities, never a local activity (see queueAudit). */
  const auditBatches = patched(AUDIT_BATCHES_PATCH);
  const ref = () => ({
    tenantId: state.key.tenantId,
    accountId: accountIdOf(state.key.target),
    role: state.key.role,
    principal: { id: state.principal.id, email: state.principal.email, identityStoreUser: state.principal.identityStoreUser },
    ids: state.assignmentIds ?? undefined,
  });
  const now = () => new Date(Date.now());
  const note = (diagnostic: Diagnostic) => {
    state.diagnostics = [...state.diagnostics.filter((d) => d.code !== diagnostic.code), diagnostic];
  };
  const expireAt = (expiresAt: string) => {
    state.expiresAt = expiresAt;
    if (state.notifications?.events.includes('expiring')) {
      // Re-armed by every extension; none when the grant is shorter than the warning window.
      const warnAt = Date.parse(expiresAt) - state.notifications.expiryWarningSeconds * 1000;
      state.expiryWarningAt = warnAt > Date.now() ? new Date(warnAt).toISOString() : null;
    }
    note({ level: 'info', code: 'expires', message: `Access ends at ${expiresAt}; ensure again to extend it.`, expires_at: expiresAt });
  };

  let notificationsInFlight = 0;
  /** Sends without waiting: the caller goes on with the grant's lifecycle. */
  const notify = (event: NotificationEvent, about?: FollowUp) => {
    if (!state.notifications?.events.includes(event) || !patched('notifications')) return;
    const reviewNotices = state.diagnostics.find((d) => d.code === 'review_required')?.notices;
    const notification: Notification = {
      tenantId: state.key.tenantId,
      event,
      grant: {
        id: state.id,
        role: state.key.role,
        target: state.key.target,
        principalId: state.principal.id,
        principalEmail: state.principal.email,
        // A follow-up (extension, break-glass) speaks of what it asks for.
        durationSeconds: about?.durationSeconds ?? state.durationSeconds,
        expiresAt: state.expiresAt,
        accessRequestId: about?.accessRequestId ?? state.accessRequestId,
        reason: (about?.justification ?? state.justification).reason,
        attachments: (about?.justification ?? state.justification).attachments,
        reviewer: state.review?.reviewerId,
        comment: state.review?.comment,
        reviewNotices: Array.isArray(reviewNotices) ? (reviewNotices as string[]) : undefined,
      },
    };
    notificationsInFlight++;
    notifying
      .notify(notification)
      .catch((err) => log.warn('notification not delivered', { event, reason: providerReason(err) }))
      .finally(() => notificationsInFlight--);
  };
  let auditsInFlight = 0;
  /**
   * True while the run drains before it continues as new: events made meanwhile (a stream of
   * extensions never stops making them, so the run would never drain) wait in the state, and the
   * next run writes them first.
   */
  let holdingAudits = false;
  const writeAudit = (record: AuditRecord) => {
    auditsInFlight++;
    CancellationScope.nonCancellable(() => auditing.writeAuditEvent(record))
      .catch((err) => log.error('audit event not written', { event: record.event, reason: providerReason(err) }))
      .finally(() => auditsInFlight--);
  };
  // The events one workflow task makes in the same turn (an expiry's two) go in one local activity.
  let inTaskBatch: AuditRecord[] = [];
  const writeAuditInTask = (record: AuditRecord) => {
    inTaskBatch.push(record);
    if (inTaskBatch.length > 1) return; // already on its way, at the end of this turn
    auditsInFlight++;
    void Promise.resolve()
      .then(() => {
        const records = inTaskBatch;
        inTaskBatch = [];
        return CancellationScope.nonCancellable(() => auditingInTask.writeAuditEvents(records)).catch(() => records.forEach(writeAudit));
      })
      .finally(() => auditsInFlight--);
  };
  /**
   * Events waiting for the one activity in flight that writes them: a flood of extensions costs
   * as many activities as the store takes round trips, not one per event, and the events one turn
   * makes (an expiry's two) go together. No local activity: see AUDIT_BATCHES_PATCH.
   */
  let auditQueue: AuditRecord[] = [];
  let auditDraining = false;
  const queueAudit = (record: AuditRecord) => {
    auditQueue.push(record);
    if (auditDraining) return;
    auditDraining = true;
    auditsInFlight++;
    void (async () => {
      for (;;) {
        await Promise.resolve(); // the rest of this turn's events join the batch
        if (auditQueue.length === 0) break;
        const batch = auditQueue.slice(0, AUDIT_BATCH_SIZE);
        auditQueue = auditQueue.slice(AUDIT_BATCH_SIZE);
        await CancellationScope.nonCancellable(() => auditing.writeAuditEvents(batch)).catch((err) =>
          log.error('audit events not written', { events: batch.map((r) => r.event), reason: providerReason(err) }),
        );
      }
      auditDraining = false;
      auditsInFlight--;
    })();
  };
  const releaseAudits = () => {
    holdingAudits = false;
    const held = state.auditBacklog ?? [];
    delete state.auditBacklog;
    held.forEach(auditBatches ? queueAudit : writeAudit);
  };
  /**
   * Writes an audit event without waiting: the caller goes on with the grant's lifecycle. Its id
   * comes from the grant's event number (kept in the state), so a retry or a replay writes the
   * same object. Scheduled outside cancellation: a cancelled workflow's revocation is written too.
   */
  /** `accessRequestId`: a follow-up's own request (extension, break-glass) rather than the grant's first. */
  const audit = (
    event: AuditEventName,
    actor: AuditActor,
    details: Record<string, unknown> = {},
    {
      at = now().toISOString(),
      accessRequestId = state.accessRequestId,
      inTask = false,
    }: { at?: string; accessRequestId?: string | null; /** written by a local activity (see auditingInTask) */ inTask?: boolean } = {},
  ) => {
    if (!patched(AUDIT_TRAIL_PATCH)) return;
    state.auditSequence = (state.auditSequence ?? 0) + 1;
    const record: AuditRecord = {
      tenant_id: state.key.tenantId,
      event,
      at,
      actor,
      principal: { id: state.principal.id, ...(state.principal.email !== undefined && { email: state.principal.email }) },
      target: state.key.target,
      role: state.key.role,
      grant_id: state.id,
      access_request_id: accessRequestId,
      details,
      occurrence: String(state.auditSequence),
    };
    if (holdingAudits) state.auditBacklog = [...(state.auditBacklog ?? []), record];
    else if (auditBatches) queueAudit(record);
    else if (inTask && patched(AUDIT_IN_TASK_PATCH)) writeAuditInTask(record);
    else writeAudit(record);
  };
  const system = (id: string): AuditActor => ({ type: 'system', id });

  /**
   * Before the run ends or continues as new: notifications (bounded by their own timeout) and
   * audit events (retried until written: no run closes with an event unwritten).
   */
  const notificationsSent = () => condition(() => notificationsInFlight === 0 && auditsInFlight === 0);


  /** The latest time recorded in the history: the workflow's clock is never taken to be earlier. */
  let clockFloor = 0;
  let published = '';
  const publish = () => {
    const status = state.status === 'new' ? 'pending' : state.status;
    // Not a command: the Web UI reads it with the workflow metadata query.
    setCurrentDetails(currentDetails(state));
    const showsExpiry = state.expiresAt !== null && patched(EXPIRY_VISIBILITY_PATCH);
    const pairs = [
      { key: searchAttributes.tenant, value: state.key.tenantId },
      { key: searchAttributes.principal, value: encodePrincipal(state.key.principalId) },
      { key: searchAttributes.target, value: state.key.target },
      { key: searchAttributes.role, value: state.key.role },
      { key: searchAttributes.grantId, value: state.id },
      { key: searchAttributes.status, value: status },
      // A grant with follow-ups is found by the latest one's id; the earlier ids stay in its state.
      ...(currentRequestId(state) ? [{ key: searchAttributes.requestId, value: currentRequestId(state)! }] : []),
      ...(showsExpiry ? [{ key: searchAttributes.expiresAt, value: new Date(state.expiresAt!) }] : []),
    ];
    const snapshot = JSON.stringify(pairs.map((p) => p.value));
    if (snapshot !== published) {
      upsertSearchAttributes(pairs);
      published = snapshot;
    }
  };

  const ensure = (req: EnsureRequest): EnsureOutcome => {
    const at = now();
    if (state.status === 'new') {
      state.requestedAt = at.toISOString();
      state.durationSeconds = req.durationSeconds;
      state.justification = req.justification;
      state.validation = req.validation;
      if (req.notifications) state.notifications = req.notifications;
      if (req.autoApprove) {
        state.approved = true;
        state.status = 'provisioning';
        if (req.breakGlass && patched(FOLLOW_UP_REQUESTS_PATCH)) openFollowUp('break_glass', req, at);
      } else {
        state.status = 'pending';
        // One request per ensure call, made by the API; runs from before that make their own.
        state.accessRequestId = req.accessRequestId ?? uuid4();
        state.approvalsRequired = req.approvalsRequired ?? 1;
        state.approvals = [];
        state.pendingExpiresAt = new Date(at.getTime() + req.pendingTtlSeconds * 1000).toISOString();
        // When the request lapses is known only here: the requester reads it in the diagnostic.
        req.reviewDiagnostics.forEach((d) =>
          note(d.code === 'review_required' ? { ...d, message: `${d.message} The request lapses at ${state.pendingExpiresAt} unless reviewed.`, expires_at: state.pendingExpiresAt } : d),
        );
      }
      audit('requested', { type: 'principal', id: state.principal.id }, {
        auto_approved: req.autoApprove,
        duration_seconds: req.durationSeconds,
        reason: req.justification.reason ?? null,
        attachments: req.justification.attachments ?? [],
        ...(!req.autoApprove && { pending_expires_at: state.pendingExpiresAt }),
      });
      publish();
      return { change: req.autoApprove ? 'activated' : 'requested', state, diagnostics: [] };
    }
    const decision = decideEnsure(state, req, at);
    if (decision.change === 'activated' && state.status === 'pending') return supersedePending(req, at);
    if (decision.change === 'extended' && decision.expiresAt === null) {
      // Still provisioning: the clock starts at activation, so the longer duration is just kept.
      if (!patched(PROVISIONING_EXTENSION_PATCH)) return { change: 'none', state, diagnostics: [] };
      state.durationSeconds = req.durationSeconds;
      if (req.breakGlass && patched(FOLLOW_UP_REQUESTS_PATCH)) (openFollowUp('break_glass', req, at), publish());
      return { change: 'extended', state, diagnostics: [] };
    }
    if (decision.change === 'extended') {
      expireAt(decision.expiresAt!);
      state.durationSeconds = req.durationSeconds;
      audit(
        'extended',
        { type: 'principal', id: state.principal.id },
        { expires_at: decision.expiresAt, duration_seconds: req.durationSeconds, reason: req.justification.reason ?? null },
        { inTask: true },
      );
      if (req.breakGlass && patched(FOLLOW_UP_REQUESTS_PATCH)) openFollowUp('break_glass', req, at);
      if (patched(EXPIRY_VISIBILITY_PATCH)) publish();
      return { change: 'extended', state, diagnostics: [] };
    }
    if (decision.change === 'requested' && state.status === 'active' && patched(FOLLOW_UP_REQUESTS_PATCH)) {
      // A reviewed role on an active grant: the extension waits for reviewers; the grant runs on.
      openFollowUp('extension', req, at);
      publish();
      return { change: 'requested', state, diagnostics: [] };
    }
    return { change: 'none', state, diagnostics: decision.change === 'none' ? (decision.diagnostics ?? []) : [] };
  };

  /**
   * A permitted break-glass ensure while the grant's request waits (CONTRACT §2): access at once,
   * as the break-glass use it is (announced, a follow-up for reviewers to acknowledge or deny);
   * the waiting request is withdrawn, and says by what.
   */
  const supersedePending = (req: EnsureRequest, at: Date): EnsureOutcome => {
    const superseded = state.accessRequestId;
    state.approved = true;
    state.status = 'provisioning';
    state.durationSeconds = req.durationSeconds;
    state.justification = req.justification;
    state.validation = req.validation;
    state.diagnostics = state.diagnostics.filter((d) => d.code !== 'review_required' && d.code !== 'approvals');
    audit('withdrawn', { type: 'principal', id: state.principal.id }, { reason: 'superseded by a break-glass use', status: 'pending' });
    openFollowUp('break_glass', req, at);
    const by = state.followUps!.at(-1)!.accessRequestId;
    state.supersededBy = { accessRequestId: by, at: at.toISOString() };
    note({
      level: 'info',
      code: 'request_superseded',
      message: `Request ${superseded} no longer waits for reviewers: the break-glass use (request ${by}) activated the grant.`,
      access_request_id: superseded,
    });
    publish();
    return { change: 'activated', state, diagnostics: [] };
  };

  /** Opens an extension request or a break-glass follow-up on the grant (it keeps the last ten). */
  const openFollowUp = (kind: FollowUp['kind'], req: EnsureRequest, at: Date) => {
    const f: FollowUp = {
      kind,
      accessRequestId: req.accessRequestId ?? uuid4(),
      durationSeconds: req.durationSeconds,
      justification: req.justification,
      requestedAt: at.toISOString(),
      lapsesAt: new Date(at.getTime() + req.pendingTtlSeconds * 1000).toISOString(),
      approvalsRequired: req.approvalsRequired ?? 1,
      approvals: [],
      denial: null,
    };
    state.followUps = [...(state.followUps ?? []).slice(-9), f];
    audit(kind === 'break_glass' ? 'break_glass_used' : 'extension_requested', { type: 'principal', id: state.principal.id }, {
      duration_seconds: f.durationSeconds,
      reason: f.justification.reason ?? null,
      attachments: f.justification.attachments ?? [],
      lapses_at: f.lapsesAt,
    }, { accessRequestId: f.accessRequestId });
    if (kind === 'break_glass') {
      note({
        level: 'warning',
        code: 'break_glass',
        message: `Break-glass access: active without review. Reviewers are asked to acknowledge it (request ${f.accessRequestId}); a denial revokes it at once.`,
        access_request_id: f.accessRequestId,
      });
      notify('break_glass', f);
    } else {
      const notices = req.reviewDiagnostics.flatMap((d) => (Array.isArray(d.notices) ? (d.notices as string[]) : []));
      note({
        level: 'info',
        code: 'extension_requested',
        message: `Extending to ${req.durationSeconds} seconds needs ${f.approvalsRequired === 1 ? 'approval by a reviewer' : `${f.approvalsRequired} approvals`} (request ${f.accessRequestId}); the grant runs on to ${state.expiresAt} meanwhile. The request lapses at ${f.lapsesAt < state.expiresAt! ? f.lapsesAt : state.expiresAt} unless reviewed.`,
        access_request_id: f.accessRequestId,
        approvals_required: f.approvalsRequired,
        notices,
      });
      notify('review_requested', f);
    }
  };
  /** The follow-up a review is for: the one it names, or (an operator's signal) the pending one of an active grant. */
  const followUpOf = (r: Review): FollowUp | undefined =>
    r.accessRequestId
      ? state.followUps?.find((f) => f.accessRequestId === r.accessRequestId)
      : state.status === 'active'
        ? state.followUps?.find((f) => followUpPending(state, f, now()))
        : undefined;
  const reviewFollowUp = (f: FollowUp, r: Review, byOperator: boolean) => {
    if (alreadyDecided(f, r)) return;
    const at = now();
    const decision: Decision = { reviewerId: r.reviewerId, ...(r.reviewerUser && { reviewerUser: r.reviewerUser }), at: at.toISOString(), ...(r.comment ? { comment: r.comment } : {}) };
    const actor: AuditActor = { type: byOperator ? 'operator' : 'reviewer', id: r.reviewerId };
    const what = f.kind === 'extension' ? 'extension' : 'break-glass use';
    const comment = r.comment ? `: ${r.comment}` : '';
    if (r.decision === 'deny') {
      f.denial = decision;
      audit('denied', actor, { comment: r.comment ?? null, kind: f.kind }, { accessRequestId: f.accessRequestId });
      if (f.kind === 'break_glass') {
        recordRevocation({ revokedBy: r.reviewerId, reason: `break-glass use denied${comment}` });
      } else {
        note({ level: 'info', code: 'extension_denied', message: `The extension was denied by ${r.reviewerId}${comment}; the grant ends at ${state.expiresAt}.`, reviewer: r.reviewerId });
      }
      publish();
      return;
    }
    f.approvals = [...f.approvals, decision];
    audit('approved', actor, {
      comment: r.comment ?? null,
      kind: f.kind,
      approvals: f.approvals.length,
      approvals_required: f.approvalsRequired,
      completes: f.approvals.length >= f.approvalsRequired,
    }, { accessRequestId: f.accessRequestId });
    if (f.approvals.length < f.approvalsRequired) {
      note({
        level: 'info',
        code: 'approvals',
        message: `The ${what} is approved by ${f.approvals.map((a) => a.reviewerId).join(', ')}: ${f.approvals.length} of ${f.approvalsRequired} approvals.`,
        approvals: f.approvals.length,
        approvals_required: f.approvalsRequired,
      });
      return;
    }
    const by = f.approvals.map((a) => a.reviewerId).join(', ');
    if (f.kind === 'extension') {
      // From the approval, not from the ask: the time waited for reviewers is not lost.
      const wanted = at.getTime() + f.durationSeconds * 1000;
      if (state.expiresAt && wanted > Date.parse(state.expiresAt)) {
        expireAt(new Date(wanted).toISOString());
        state.durationSeconds = f.durationSeconds;
        audit('extended', actor, { expires_at: state.expiresAt, duration_seconds: f.durationSeconds, by_extension_request: true }, { accessRequestId: f.accessRequestId });
      }
      note({ level: 'info', code: 'extension_approved', message: `The extension was approved by ${by}${comment}.`, reviewer: r.reviewerId });
    } else {
      note({ level: 'info', code: 'break_glass_acknowledged', message: `The break-glass use was acknowledged by ${by}${comment}.`, reviewer: r.reviewerId });
    }
    publish();
  };

  const repeats = (r: Review) => alreadyDecided(state, r);
  const requirePending = (r: Review) => {
    if (r.reviewerId === state.principal.id || (r.reviewerUser !== undefined && r.reviewerUser === personOf(state.principal))) {
      throw ApplicationFailure.nonRetryable('nobody reviews their own request', rejection.selfReview);
    }
    const f = followUpOf(r);
    const other = approvedAsAnother(f ? f.approvals : state.approvals, r);
    if (other) throw ApplicationFailure.nonRetryable(`you have already approved this request (as ${other.reviewerId})`, rejection.alreadyApproved);
    if (f) {
      if (alreadyDecided(f, r)) return;
      if (!followUpPending(state, f, now())) throw ApplicationFailure.nonRetryable('the request is no longer pending', rejection.notPending);
      return;
    }
    if (r.accessRequestId && r.accessRequestId !== state.accessRequestId) {
      throw ApplicationFailure.nonRetryable('the grant belongs to another request', rejection.notPending);
    }
    if (repeats(r)) return;
    if (state.status !== 'pending' || state.review) {
      throw ApplicationFailure.nonRetryable(`the request is ${state.review ? 'already reviewed' : state.status}`, rejection.notPending);
    }
  };
  /** `byOperator`: sent with `temporal workflow signal` (or the Web UI), not through the API. */
  const review = (r: Review, byOperator = false) => {
    const f = followUpOf(r);
    if (f) return reviewFollowUp(f, r, byOperator);
    if (repeats(r)) return;
    const actor: AuditActor = { type: byOperator ? 'operator' : 'reviewer', id: r.reviewerId };
    const decision: Decision = { reviewerId: r.reviewerId, ...(r.reviewerUser && { reviewerUser: r.reviewerUser }), at: now().toISOString(), ...(r.comment ? { comment: r.comment } : {}) };
    if (r.decision === 'deny') {
      // One denial closes the request, whatever approvals it had.
      state.denial = decision;
      audit('denied', actor, { comment: r.comment ?? null });
    } else {
      state.approvals = [...(state.approvals ?? []), decision];
      const required = state.approvalsRequired ?? 1;
      // Each approval is on record; the one that reaches the threshold says it completed the request.
      audit('approved', actor, { comment: r.comment ?? null, approvals: state.approvals.length, approvals_required: required, completes: state.approvals.length >= required });
      if (state.approvals.length < required) {
        note({
          level: 'info',
          code: 'approvals',
          message: `Approved by ${state.approvals.map((a) => a.reviewerId).join(', ')}: ${state.approvals.length} of ${required} approvals.`,
          approvals: state.approvals.length,
          approvals_required: required,
        });
        return;
      }
    }
    state.review = r;
    state.approved = r.decision === 'approve';
    const by = r.decision === 'approve' ? state.approvals!.map((a) => a.reviewerId).join(', ') : r.reviewerId;
    note({
      level: 'info',
      code: r.decision === 'approve' ? 'approved' : 'denied',
      message: `${r.decision === 'approve' ? 'Approved' : 'Denied'} by ${by}${r.comment ? `: ${r.comment}` : ''}`,
      reviewer: r.reviewerId,
    });
  };
  const recordRevocation = (r: Revocation, byOperator = false) => {
    state.revocation = r;
    const actor: AuditActor =
      byOperator || r === CANCELLED_BY_OPERATOR
        ? { type: 'operator', id: r.revokedBy }
        : { type: r.revokedBy === state.principal.id ? 'principal' : 'reviewer', id: r.revokedBy };
    // A request revoked before any decision is withdrawn (its grant ends revoked, with nothing to remove).
    const withdrawn = state.status === 'pending' && !state.review && !state.denial;
    audit(withdrawn ? 'withdrawn' : 'revoked', actor, { reason: r.reason ?? null, status: state.status });
    note({ level: 'info', code: 'revoked', message: `Revoked by ${r.revokedBy}${r.reason ? `: ${r.reason}` : ''}`, revoked_by: r.revokedBy });
  };
  const revoke = (r: Revocation, byOperator = false) => {
    if (isOpen(state) && !state.revocation) recordRevocation(r, byOperator);
  };

  setHandler(grantStateQuery, () => state);
  setHandler(ensureUpdate, ensure, {
    validator: (_req: EnsureRequest) => {
      // A recorded revocation closes the grant to ensures at once, not only once its removal has
      // begun: no call is told `extended` (or that the grant holds) while it is being revoked.
      if (state.status !== 'new' && (!isOpen(state) || state.revocation)) {
        throw ApplicationFailure.nonRetryable('the grant is closing; a new one starts once it has closed', rejection.closing);
      }
    },
  });
  setHandler(reviewUpdate, (r) => (review(r), state), { validator: requirePending });
  setHandler(revokeUpdate, (r) => (revoke(r), state), {
    validator: (_r: Revocation) => {
      if (!isOpen(state) || state.revocation) throw ApplicationFailure.nonRetryable(`the grant is ${state.status}`, rejection.notOpen);
    },
  });
  const operatorReview = (decision: Review['decision']) => (r: OperatorReview) => {
    try {
      const asked = { decision, reviewerId: r.reviewer, comment: r.comment };
      requirePending(asked);
      review(asked, true);
    } catch (err) {
      log.warn('operator review ignored', { reason: (err as Error).message });
    }
  };
  // Reconcile requests are numbered; the main sequence serves every one asked so far in one check.
  let reconcileAsked = 0;
  let reconcileServed = 0;
  let reconciled: ReconcileOutcome = { outcome: 'present' };
  const reconcilePending = () => reconcileServed < reconcileAsked;
  setHandler(
    reconcileUpdate,
    async () => {
      const ticket = ++reconcileAsked;
      // Served by the main sequence even after a cancellation (which is a revoke: answered `ended`).
      await CancellationScope.nonCancellable(() => condition(() => reconcileServed >= ticket));
      return reconciled;
    },
    {
      validator: () => {
        if (state.status !== 'active' || !isOpen(state) || state.revocation || state.assignmentPreexisted !== false) {
          throw ApplicationFailure.nonRetryable(`the grant holds no assignment of its own (${state.status})`, rejection.notHolding);
        }
      },
    },
  );
  setHandler(approveSignal, operatorReview('approve'));
  setHandler(denySignal, operatorReview('deny'));
  setHandler(revokeSignal, (r) => revoke(r, true));

  // Events the previous run made while it drained (see holdingAudits).
  if (state.auditBacklog?.length) releaseAudits();

  if (!operatorSafe) return lifecycle();
  // Cancelling the workflow (the Web UI's "Request Cancellation", `temporal workflow cancel`) is a
  // revoke. The lifecycle runs in a non-cancellable scope, so a cancellation never abandons work in
  // flight (a creation at AWS left mid-way would outlive the run): it becomes a revocation, which
  // every phase already handles: a pending request closes, a creation in flight finishes and is
  // removed, an active grant is removed, a grant already being removed finishes. The run then
  // completes with the grant's state, as `revoked`, readable like any other closed grant (listing,
  // the API and reconciliation read completed runs; a cancelled run would have no result).
  CancellationScope.current().cancelRequested.catch(() => {
    log.info('workflow cancelled: revoking the grant');
    if (state.status === 'new') {
      // No ensure yet, so nothing was asked for or made: the grant closes before it began.
      state.status = 'revoked';
      recordRevocation(CANCELLED_BY_OPERATOR);
      publish();
    } else {
      revoke(CANCELLED_BY_OPERATOR);
    }
  });
  return CancellationScope.nonCancellable(lifecycle);

  async function lifecycle(): Promise<GrantState> {
    publish();
    if (state.status === 'new' && !(await condition(() => state.status !== 'new', FIRST_ENSURE_TIMEOUT))) return state;

    if (state.status === 'pending') {
      if (!continued) notify('review_requested');
      await awaitReview();
      if (state.review) notify(state.review.decision === 'approve' ? 'approved' : 'denied');
    }
    if (state.status === 'provisioning') await provision();
    if (state.status === 'active') await holdUntilExpiry();
    await notificationsSent();
    await condition(allHandlersFinished);
    return state;
  }

  /** Continue-as-new once notifications are sent and handlers done, unless `stillIdle` turned false meanwhile. */
  async function continueAsNewIf(stillIdle: () => boolean): Promise<void> {
    holdingAudits = true;
    await notificationsSent();
    await condition(allHandlersFinished);
    if (stillIdle()) await continueAsNew<typeof grantWorkflow>({ ...input, state });
    releaseAudits();
  }

  async function awaitReview(): Promise<void> {
    // A break-glass use can end the wait too (supersedePending): the grant is then provisioning.
    const undecided = () => state.review === null && state.revocation === null && state.status === 'pending';
    const waitMs = Math.max(0, Date.parse(state.pendingExpiresAt!) - Date.now());
    // A long history wakes it too: messages that change nothing (ignored signals, ensures that
    // find the request pending) still grow it, and a request may wait days for a reviewer.
    const woken = await condition(() => !undecided() || (operatorSafe && historyIsLong()), waitMs);
    // Returns only if the request was decided while the handlers finished.
    if (woken && undecided()) await continueAsNewIf(undecided);
    if (state.revocation) {
      state.status = 'revoked';
    } else if (state.supersededBy) {
      // Activated by a break-glass use: it provisions as an approved grant would.
    } else if (!woken) {
      state.status = 'expired';
      note({ level: 'info', code: 'request_expired', message: `Nobody reviewed the request before ${state.pendingExpiresAt}` });
      audit('expired', system('expiry'), { phase: 'pending', pending_expires_at: state.pendingExpiresAt });
    } else {
      state.status = state.review!.decision === 'approve' ? 'provisioning' : 'revoked';
    }
    publish();
  }

  async function provision(): Promise<void> {
    if (operatorSafe) {
      // The last point with no activity in flight: a run that grew long while it waited for its
      // review continues here, and its successor provisions from the start (nothing looked yet).
      if (historyIsLong() && !state.revocation) await continueAsNewIf(() => state.revocation === null);
      // Revoked before anything was made: nothing to remove.
      if (state.revocation) {
        state.status = 'revoked';
        publish();
        return;
      }
    }
    // The activity's clock, recorded in the history (none in histories from before it returned one).
    // The workflow's own clock right after a worker crash can lag behind, and differently on replay.
    let assignedAt: string | undefined;
    const lookedUp = (found: AssignmentLookup) => {
      state.assignmentPreexisted = found.preexisted;
      state.assignmentIds = found.ids;
    };
    try {
      if (state.assignmentPreexisted === null && patched('provision-in-one-activity')) {
        const made = await provisioning.provisionAssignment(ref());
        lookedUp(made);
        assignedAt = made.assignedAt;
      } else {
        // Histories from before the one-activity provisioning replay this way.
        let justChecked = false;
        if (state.assignmentPreexisted === null) {
          const found = await provisioning.findAssignment(ref());
          lookedUp({ preexisted: found.exists, ids: found.ids });
          justChecked = true;
        }
        if (!state.assignmentPreexisted) assignedAt = (await provisioning.createAssignment(ref(), { justChecked }))?.assignedAt;
      }
    } catch (err) {
      // A failed provisionAssignment carries what its look found, if it got that far.
      const found = state.assignmentPreexisted === null ? lookupOf(err) : undefined;
      if (found) lookedUp(found);
      state.provisioningStatus = 'failed';
      state.status = 'revoked';
      state.failedAt = now().toISOString();
      note({ level: 'error', code: 'provisioning_failed', message: providerReason(err) });
      audit('provisioning_failed', system('provisioning'), { message: providerReason(err), preexisted: state.assignmentPreexisted });
      publish();
      // A creation that timed out may still have happened at the provider: make sure it is gone.
      if (state.assignmentPreexisted === false) {
        await deprovision();
        audit('deprovisioned', system('deprovisioning'), { ended: 'provisioning_failed' });
      }
      return;
    }
    const at = assignedAt ? new Date(assignedAt) : now();
    clockFloor = at.getTime();
    state.provisioningStatus = 'successful';
    state.status = 'active';
    state.activatedAt = at.toISOString();
    expireAt(new Date(at.getTime() + state.durationSeconds * 1000).toISOString());
    audit(
      'activated',
      system('provisioning'),
      {
        preexisted: state.assignmentPreexisted,
        assignment_ids: state.assignmentIds && { user_id: state.assignmentIds.userId, permission_set_arn: state.assignmentIds.permissionSetArn },
        expires_at: state.expiresAt,
        duration_seconds: state.durationSeconds,
        reason: state.justification.reason ?? null,
        approved_by: state.approvals?.length ? state.approvals.map((a) => a.reviewerId) : state.review?.decision === 'approve' ? [state.review.reviewerId] : [],
      },
      { at: state.activatedAt },
    );
    notify('active');
    if (state.assignmentPreexisted) {
      note({
        level: 'info',
        code: 'assignment_preexisted',
        message: 'The account assignment existed before this grant; it will be left in place when the grant ends.',
      });
    }
    publish();
  }

  async function holdUntilExpiry(): Promise<void> {
    // Only the timer decides that the time is up, never a comparison with the clock: right after a
    // worker crash the workflow's clock can differ between the live run and a replay (and lag
    // behind), which broke replay with a nondeterminism error or restarted the whole wait.
    const timerDecides = patched('expiry-timer-ends-grant');
    // An extension no longer wakes the wait (nor cancels and restarts its timer, two history events
    // and a pass through this loop per extension): the timer, once it fires, sees the later expiry
    // and waits again for the rest.
    const timerRunsOn = patched(EXTENSION_KEEPS_TIMER_PATCH);
    for (;;) {
      const expiresAt = state.expiresAt;
      const clock = Math.max(Date.now(), clockFloor);
      const remaining = Date.parse(expiresAt!) - clock;
      if (state.revocation || (remaining <= 0 && !timerDecides)) break;
      const warnIn = state.expiryWarningAt ? Date.parse(state.expiryWarningAt) - clock : Infinity;
      if (warnIn <= 0) {
        state.expiryWarningAt = null;
        notify('expiring');
        continue;
      }
      const untilWarning = warnIn < remaining;
      const woken = await condition(
        () => (!timerRunsOn && state.expiresAt !== expiresAt) || state.revocation !== null || historyIsLong() || reconcilePending(),
        Math.max(untilWarning ? warnIn : remaining, 1),
      );
      // An extension taken in the same workflow task as the expiry timer wins: its caller was told
      // `extended`. Temporal's core hands a task's updates to the workflow before its fired timers
      // (sdk-core #639): the changed expiry keeps the loop going (and before the patch, the
      // condition, checked right after each job, woke before the timer; test/races.test.ts holds this).
      if (!woken && timerDecides && !untilWarning && state.expiresAt === expiresAt) break;
      // Woken before the expiry timer fired, so the grant still holds: re-create what was removed.
      if (woken && reconcilePending() && !state.revocation) await restoreAssignment();
      if (historyIsLong() && !state.revocation) {
        holdingAudits = true;
        await notificationsSent();
        // A reconcile asked meanwhile is a handler still running: serve it on the next pass.
        await condition(() => allHandlersFinished() || reconcilePending());
        if (reconcilePending()) {
          releaseAudits();
          continue;
        }
        await continueAsNew<typeof grantWorkflow>({ ...input, state });
      }
    }
    // The grant is ending: nothing is re-created from here on.
    reconciled = { outcome: 'ended' };
    reconcileServed = reconcileAsked;
    state.closing = true;
    publish();
    // An expiry (not a revocation) tells the activity when access should have ended: the expiry-lag metric.
    const expiredAt = !state.revocation && patched(EXPIRY_VISIBILITY_PATCH) ? (state.expiresAt ?? undefined) : undefined;
    // The deletion goes first, and both events are written after it (in one batch, or before
    // AUDIT_BATCHES_PATCH by a local activity in the task that saw it done).
    const inTask = auditBatches || patched(AUDIT_IN_TASK_PATCH);
    const endedAt = now().toISOString();
    const expiry = () => audit('expired', system('expiry'), { expires_at: state.expiresAt, preexisted: state.assignmentPreexisted }, { at: endedAt, inTask });
    if (!state.revocation && !inTask) expiry();
    if (!state.assignmentPreexisted) await deprovision(expiredAt);
    if (!state.revocation && inTask) expiry();
    if (!state.assignmentPreexisted) audit('deprovisioned', system('deprovisioning'), { ended: state.revocation ? 'revoked' : 'expired' }, { inTask });
    state.status = state.revocation ? 'revoked' : 'expired';
    publish();
  }

  /**
   * Re-creates the assignment if it was removed behind the grant's back. Runs in the main sequence,
   * between expiry checks, so it never overlaps deprovisioning. It is awaited to the end even past
   * the expiry: were it abandoned, a creation still in progress at AWS could land after the
   * deletion and outlive the grant.
   */
  async function restoreAssignment(): Promise<void> {
    const upTo = reconcileAsked;
    try {
      const { created } = await restoring.createAssignment(ref());
      reconciled = { outcome: created ? 'restored' : 'present' };
      state.diagnostics = state.diagnostics.filter((d) => d.code !== 'assignment_restore_failed');
      if (created) {
        audit('assignment_restored', system('reconciliation'), {});
        note({
          level: 'warning',
          code: 'assignment_restored',
          message: `The account assignment had been removed outside this service; it was re-created at ${now().toISOString()}.`,
        });
      }
    } catch (err) {
      reconciled = { outcome: 'failed', message: providerReason(err) };
      note({ level: 'warning', code: 'assignment_restore_failed', message: `Re-creating the removed account assignment failed: ${providerReason(err)}` });
    }
    reconcileServed = upTo;
  }

  async function deprovision(expiredAt?: string): Promise<void> {
    for (let round = 1; ; round++) {
      try {
        await deprovisioning.deleteAssignment(expiredAt ? { ...ref(), expiredAt } : ref());
        state.diagnostics = state.diagnostics.filter((d) => d.code !== 'deprovisioning_retrying');
        return;
      } catch (err) {
        note({
          level: 'warning',
          code: 'deprovisioning_retrying',
          message: `Removing the account assignment failed (${providerReason(err)}); still retrying.`,
          rounds: round,
        });
        await sleep(Math.min(60_000, 5_000 * round));
      }
    }
  }
}

/** What the Web UI shows as the grant's current details (Markdown). */
function currentDetails(state: GrantState): string {
  // Markdown in the Web UI: the names from the requester's token are escaped to read as themselves.
  const who = markdownText(state.principal.email ?? state.key.principalId);
  const what = `**${markdownText(state.key.role)}** on \`${state.key.target}\` for ${who}`;
  if (state.closing) return `${what}: removing access (${state.revocation ? 'revoked' : 'expired'})`;
  switch (state.status) {
    case 'new':
    case 'pending':
      return `${what}: pending review until ${state.pendingExpiresAt ?? 'the first ensure'} (request ${state.accessRequestId ?? '-'})`;
    case 'provisioning':
      return `${what}: provisioning`;
    case 'active':
      return `${what}: active until ${state.expiresAt}`;
    default:
      return `${what}: ${state.status}${state.provisioningStatus === 'failed' ? ' (provisioning failed)' : ''}`;
  }
}

function historyIsLong(): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength > MAX_HISTORY_EVENTS;
}

/**
 * What a failed provisionAssignment had found before it failed: in the failure's details, or (when
 * it timed out) in its last heartbeat. None: it failed before its look, so it created nothing.
 */
function lookupOf(err: unknown): AssignmentLookup | undefined {
  const isLookup = (d: unknown): d is AssignmentLookup =>
    typeof d === 'object' && d !== null && typeof (d as AssignmentLookup).preexisted === 'boolean' && typeof (d as AssignmentLookup).ids === 'object';
  for (let cause: unknown = err; cause instanceof Error; cause = (cause as Error).cause) {
    if (cause instanceof ApplicationFailure && isLookup(cause.details?.[0])) return cause.details[0];
    if (cause instanceof TimeoutFailure && isLookup(cause.lastHeartbeatDetails)) return cause.lastHeartbeatDetails;
  }
  return undefined;
}

function providerReason(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}
