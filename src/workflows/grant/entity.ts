// The grant as an entity: its state, and one method per message that changes it. Every message
// method but `reconcile` is synchronous, so no two of them ever interleave; `reconcile` only
// waits for the main sequence (lifecycle.ts), which does the work.
import { ApplicationFailure, CancellationScope, condition, log, uuid4 } from '@temporalio/workflow';
import {
  alreadyDecided,
  approvedAsAnother,
  decideEnsure,
  decisionOf,
  type EnsureRequest,
  type FollowUp,
  followUpPending,
  type GrantState,
  isOpen,
  reviewsOwn,
  scheduledDiagnostic,
  type Review,
  type Revocation,
} from '../../domain/grant';
import type { AuditActor, AuditRecord } from '../../domain/audit';
import { versions } from '../versions';
import { type EnsureOutcome, type OperatorReview, type ReconcileOutcome, rejection, type SessionsRevoked } from '../messages';
import { openFollowUp, reviewFollowUp } from './follow-ups';
import { CANCELLED_BY_OPERATOR, GrantRecord, now } from './record';

export class Grant extends GrantRecord {
  /** The latest time recorded in the history: the workflow's clock is never taken to be earlier. */
  clockFloor = 0;
  /** Reconcile requests are numbered; the main sequence serves every one asked so far in one check. */
  reconcileAsked = 0;
  reconcileServed = 0;
  reconciled: ReconcileOutcome = { outcome: 'present' };
  /** When the permission set's workflow said the grant's sessions were ended (`aws.revoke_sessions`). */
  sessionsRevokedAt: string | null = null;
  /** The moment the permission set's workflow wrote for the grant's user and account. */
  sessionsIssuedBefore: string | null = null;

  // ---- Messages ----

  validateEnsure(_req: EnsureRequest): void {
    // A recorded revocation closes the grant to ensures at once, not only once its removal has
    // begun: no call is told `extended` (or that the grant holds) while it is being revoked.
    const { state } = this;
    if (state.status !== 'new' && (!isOpen(state) || state.revocation)) {
      throw ApplicationFailure.nonRetryable('the grant is closing; a new one starts once it has closed', rejection.closing);
    }
  }

  ensure(req: EnsureRequest): EnsureOutcome {
    const { state } = this;
    const at = now();
    if (state.status === 'new') return this.begin(req, at);
    const decision = decideEnsure(state, req, at);
    if (decision.change === 'activated' && state.status === 'pending') return this.activateNow(req, at);
    if (decision.change === 'extended') {
      state.durationSeconds = req.durationSeconds;
      // Still provisioning (no expiry yet): the clock starts at activation, so the longer duration is just kept.
      let audit: AuditRecord[] | undefined;
      if (decision.expiresAt !== null) {
        this.expireAt(decision.expiresAt);
        const details = { expires_at: decision.expiresAt, duration_seconds: req.durationSeconds, reason: req.justification.reason ?? null };
        // Without a workflow task of its own for the write (a stream of extensions made one each).
        if (versions.extensionAuditByCaller()) audit = [this.auditByCaller('extended', this.requester(), details)];
        else this.audit('extended', this.requester(), details);
      }
      if (req.breakGlass) openFollowUp(this, 'break_glass', req, at);
      this.publish();
      return { change: 'extended', state, diagnostics: [], ...(audit && { audit }) };
    }
    if (decision.change === 'requested' && state.status === 'active') {
      // A reviewed role on an active grant: the extension waits for reviewers; the grant runs on.
      openFollowUp(this, 'extension', req, at);
      this.publish();
      return { change: 'requested', state, diagnostics: [] };
    }
    return { change: 'none', state, diagnostics: decision.change === 'none' ? (decision.diagnostics ?? []) : [] };
  }

  validateReview(r: Review): void {
    const { state } = this;
    if (reviewsOwn(r, state.principal)) {
      throw ApplicationFailure.nonRetryable('nobody reviews their own request', rejection.selfReview);
    }
    const f = this.followUpOf(r);
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
    if (alreadyDecided(state, r)) return;
    if (state.status !== 'pending' || state.review) {
      throw ApplicationFailure.nonRetryable(`the request is ${state.review ? 'already reviewed' : state.status}`, rejection.notPending);
    }
  }

  /** `byOperator`: sent with `temporal workflow signal` (or the Web UI), not through the API. */
  review(r: Review, byOperator = false): GrantState {
    const { state } = this;
    const f = this.followUpOf(r);
    if (f) {
      reviewFollowUp(this, f, r, byOperator);
      return state;
    }
    if (alreadyDecided(state, r)) return state;
    const actor: AuditActor = { type: byOperator ? 'operator' : 'reviewer', id: r.reviewerId };
    const decision = decisionOf(r, now());
    if (r.decision === 'deny') {
      // One denial closes the request, whatever approvals it had.
      state.denial = decision;
      this.audit('denied', actor, { comment: r.comment ?? null });
    } else {
      state.approvals = [...(state.approvals ?? []), decision];
      const required = state.approvalsRequired ?? 1;
      // Each approval is on record; the one that reaches the threshold says it completed the request.
      this.audit('approved', actor, { comment: r.comment ?? null, approvals: state.approvals.length, approvals_required: required, completes: state.approvals.length >= required });
      if (state.approvals.length < required) {
        this.note({
          level: 'info',
          code: 'approvals',
          message: `Approved by ${state.approvals.map((a) => a.reviewerId).join(', ')}: ${state.approvals.length} of ${required} approvals.`,
          approvals: state.approvals.length,
          approvals_required: required,
        });
        return state;
      }
    }
    state.review = r;
    state.approved = r.decision === 'approve';
    const by = r.decision === 'approve' ? state.approvals!.map((a) => a.reviewerId).join(', ') : r.reviewerId;
    this.note({
      level: 'info',
      code: r.decision === 'approve' ? 'approved' : 'denied',
      message: `${r.decision === 'approve' ? 'Approved' : 'Denied'} by ${by}${r.comment ? `: ${r.comment}` : ''}`,
      reviewer: r.reviewerId,
    });
    return state;
  }

  /** The `approve` and `deny` signals: an operator's review, ignored (and logged) when the API would refuse it. */
  operatorReview(decision: Review['decision'], r: OperatorReview): void {
    try {
      const asked = { decision, reviewerId: r.reviewer, comment: r.comment };
      this.validateReview(asked);
      this.review(asked, true);
    } catch (err) {
      log.warn('operator review ignored', { reason: (err as Error).message });
    }
  }

  validateRevoke(_r: Revocation): void {
    if (!isOpen(this.state) || this.state.revocation) throw ApplicationFailure.nonRetryable(`the grant is ${this.state.status}`, rejection.notOpen);
  }

  revoke(r: Revocation, byOperator = false): GrantState {
    if (isOpen(this.state) && !this.state.revocation) this.recordRevocation(r, byOperator);
    return this.state;
  }

  /**
   * Cancelling the workflow (the Web UI's "Request Cancellation", `temporal workflow cancel`) is a
   * revoke, which every phase already handles (see grantWorkflow).
   */
  cancel(): void {
    log.info('workflow cancelled: revoking the grant');
    if (this.state.status === 'new') {
      // No ensure yet, so nothing was asked for or made: the grant closes before it began.
      this.state.status = 'revoked';
      this.recordRevocation(CANCELLED_BY_OPERATOR);
      this.publish();
    } else {
      this.revoke(CANCELLED_BY_OPERATOR);
    }
  }

  sessionsRevoked({ at, sessions_issued_before, grant_id }: SessionsRevoked): void {
    // Meant for an earlier run of this key (its grant closed, a new one began): not this grant's sessions.
    if (grant_id !== undefined && grant_id !== this.state.id) return;
    this.sessionsRevokedAt = at;
    this.sessionsIssuedBefore = sessions_issued_before ?? null;
  }

  sessionRevocationFailed({ message, grant_id }: { message: string; grant_id?: string }): void {
    if (this.sessionsRevokedAt !== null || (grant_id !== undefined && grant_id !== this.state.id)) return;
    const cutoff = this.state.diagnostics.find((d) => d.code === 'session_revocation_pending')?.sessions_issued_before;
    this.note({ level: 'warning', code: 'session_revocation_pending', message: `Ending AWS sessions failed (${message}); still retrying.`, sessions_issued_before: cutoff });
  }

  validateReconcile(): void {
    const { state } = this;
    if (state.status !== 'active' || !isOpen(state) || state.revocation || state.assignmentPreexisted !== false) {
      throw ApplicationFailure.nonRetryable(`the grant holds no assignment of its own (${state.status})`, rejection.notHolding);
    }
  }

  /** Served by the main sequence (holdUntilExpiry), even after a cancellation (which is a revoke: answered `ended`). */
  async reconcile(): Promise<ReconcileOutcome> {
    const ticket = ++this.reconcileAsked;
    await CancellationScope.nonCancellable(() => condition(() => this.reconcileServed >= ticket));
    return this.reconciled;
  }

  reconcilePending(): boolean {
    return this.reconcileServed < this.reconcileAsked;
  }

  // ---- Inside the messages ----

  /** The first ensure: the grant is asked for, and either starts or waits for review. */
  private begin(req: EnsureRequest, at: Date): EnsureOutcome {
    const { state } = this;
    state.requestedAt = at.toISOString();
    state.durationSeconds = req.durationSeconds;
    state.justification = req.justification;
    state.validation = req.validation;
    if (req.notifications) state.notifications = req.notifications;
    if (req.startsAt) {
      // Pending until then, whether policy activates it or reviewers must (they may approve ahead).
      state.startsAt = req.startsAt;
      this.note(scheduledDiagnostic(req.startsAt));
    }
    if (req.autoApprove) {
      state.approved = true;
      state.status = req.startsAt ? 'pending' : 'provisioning';
      if (req.breakGlass) openFollowUp(this, 'break_glass', req, at);
    } else {
      state.status = 'pending';
      // One request per ensure call, made by the API.
      state.accessRequestId = req.accessRequestId ?? uuid4();
      state.approvalsRequired = req.approvalsRequired ?? 1;
      if (req.requestGrants !== undefined) state.requestGrants = req.requestGrants;
      state.approvals = [];
      // A scheduled request waits for reviewers from now until the usual time past its start.
      const waitsFrom = req.startsAt ? Math.max(at.getTime(), Date.parse(req.startsAt)) : at.getTime();
      state.pendingExpiresAt = new Date(waitsFrom + req.pendingTtlSeconds * 1000).toISOString();
      // When the request lapses is known only here: the requester reads it in the diagnostic.
      req.reviewDiagnostics.forEach((d) =>
        this.note(d.code === 'review_required' ? { ...d, message: `${d.message} The request lapses at ${state.pendingExpiresAt} unless reviewed.`, expires_at: state.pendingExpiresAt } : d),
      );
    }
    this.audit('requested', this.requester(), {
      auto_approved: req.autoApprove,
      duration_seconds: req.durationSeconds,
      reason: req.justification.reason ?? null,
      attachments: req.justification.attachments ?? [],
      ...(!req.autoApprove && { pending_expires_at: state.pendingExpiresAt }),
      ...(req.startsAt && { starts_at: req.startsAt }),
    });
    this.publish();
    return { change: req.autoApprove ? 'activated' : 'requested', state, diagnostics: [] };
  }

  /**
   * An ensure that policy lets activate, on a grant not yet begun (CONTRACT §2): a break-glass use
   * while the request waits, or a call without `starts_at` on a scheduled grant. Access begins
   * now; a request still waiting for reviewers is withdrawn, and says by what. A break-glass use
   * is announced and opens a follow-up for reviewers to acknowledge or deny.
   */
  private activateNow(req: EnsureRequest, at: Date): EnsureOutcome {
    const { state } = this;
    const waiting = state.approved ? null : state.accessRequestId;
    state.approved = true;
    state.status = 'provisioning';
    state.durationSeconds = req.durationSeconds;
    state.justification = req.justification;
    state.validation = req.validation;
    const scheduled = state.startsAt;
    state.startsAt = null;
    state.diagnostics = state.diagnostics.filter((d) => d.code !== 'review_required' && d.code !== 'approvals' && d.code !== 'scheduled');
    if (waiting) this.audit('withdrawn', this.requester(), { reason: req.breakGlass ? 'superseded by a break-glass use' : 'superseded: started now', status: 'pending' });
    if (req.breakGlass) openFollowUp(this, 'break_glass', req, at);
    const by = req.breakGlass ? state.followUps!.at(-1)!.accessRequestId : undefined;
    if (waiting) {
      state.supersededBy = { ...(by && { accessRequestId: by }), at: at.toISOString() };
      this.note({
        level: 'info',
        code: 'request_superseded',
        message: `Request ${waiting} no longer waits for reviewers: ${by ? `the break-glass use (request ${by})` : 'an ensure that policy lets activate'} activated the grant.`,
        access_request_id: waiting,
      });
    }
    if (scheduled) this.note({ level: 'info', code: 'started_now', message: `Scheduled for ${scheduled}, started now by an ensure.`, scheduled_for: scheduled });
    this.publish();
    return { change: 'activated', state, diagnostics: [] };
  }

  /** The follow-up a review is for: the one it names, or (an operator's signal) the pending one of an active grant. */
  private followUpOf(r: Review): FollowUp | undefined {
    const { state } = this;
    if (r.accessRequestId) return state.followUps?.find((f) => f.accessRequestId === r.accessRequestId);
    return state.status === 'active' ? state.followUps?.find((f) => followUpPending(state, f, now())) : undefined;
  }
}
