// The grant's state and how it is recorded: diagnostics for the requester, audit events,
// notifications, and what operators see in Temporal. Messages (entity.ts) and phases
// (lifecycle.ts) change the state through it.
import { setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import type { AuditActor, AuditEventName, AuditRecord } from '../../domain/audit';
import { accountIdOf, type Diagnostic, groupOf, type FollowUp, type GrantState, newGrantState, type NotificationEvent, type Revocation } from '../../domain/grant';
import { GRANT_MEMO, type GrantWorkflowInput } from '../messages';
import { versions } from '../versions';
import { Outbox } from './outbox';
import { currentDetails, memoOf, searchAttributePairs } from './view';

/** Who revoked a grant whose workflow an operator cancelled (the cancellation carries no identity). */
export const CANCELLED_BY_OPERATOR: Revocation = {
  revokedBy: 'an operator',
  reason: 'its workflow was cancelled in Temporal (Web UI or CLI)',
};

export class GrantRecord {
  readonly state: GrantState;
  readonly outbox: Outbox;
  /** A run carried on by continue-as-new: what its first run did (notify reviewers) is not done again. */
  readonly continued: boolean;
  private published = '';
  private publishedMemo = '';
  /** How many times the state was shown: a message that showed it needs no second look (index.ts). */
  publishes = 0;

  constructor(readonly input: GrantWorkflowInput) {
    this.state = input.state ?? newGrantState(input.key, input.principal, input.grantId);
    this.continued = input.state !== undefined;
    this.outbox = new Outbox(this.state);
  }

  note(diagnostic: Diagnostic): void {
    this.state.diagnostics = [...this.state.diagnostics.filter((d) => d.code !== diagnostic.code), diagnostic];
  }

  expireAt(expiresAt: string): void {
    const { state } = this;
    state.expiresAt = expiresAt;
    if (state.notifications?.events.includes('expiring')) {
      // Re-armed by every extension; none when the grant is shorter than the warning window.
      const warnAt = Date.parse(expiresAt) - state.notifications.expiryWarningSeconds * 1000;
      state.expiryWarningAt = warnAt > Date.now() ? new Date(warnAt).toISOString() : null;
    }
    this.note({ level: 'info', code: 'expires', message: `Access ends at ${expiresAt}; ensure again to extend it.`, expires_at: expiresAt });
  }

  /** An audit event, written without waiting. `accessRequestId`: a follow-up's own request (extension, break-glass) rather than the grant's first. */
  audit(...args: Parameters<GrantRecord['auditRecord']>): void {
    this.outbox.audit(this.auditRecord(...args));
  }

  /** An audit event its update's caller writes (Outbox.handOff); the workflow writes it later too. */
  auditByCaller(...args: Parameters<GrantRecord['auditRecord']>): AuditRecord {
    const record = this.auditRecord(...args);
    this.outbox.handOff(record);
    return record;
  }

  /** The grant's next audit event, numbered (its id derives from the number), for whoever writes it. */
  auditRecord(
    event: AuditEventName,
    actor: AuditActor,
    details: Record<string, unknown> = {},
    { at = now().toISOString(), accessRequestId = this.state.accessRequestId }: { at?: string; accessRequestId?: string | null } = {},
  ): AuditRecord {
    const { state } = this;
    state.auditSequence = (state.auditSequence ?? 0) + 1;
    return {
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
  }

  /** A notification, sent without waiting. A follow-up (extension, break-glass) speaks of what it asks for. */
  notify(event: NotificationEvent, about?: FollowUp): void {
    const { state } = this;
    if (!state.notifications?.events.includes(event)) return;
    const reviewNotices = state.diagnostics.find((d) => d.code === 'review_required')?.notices;
    const justification = about?.justification ?? state.justification;
    this.outbox.notify({
      tenantId: state.key.tenantId,
      event,
      grant: {
        id: state.id,
        role: state.key.role,
        target: state.key.target,
        principalId: state.principal.id,
        principalEmail: state.principal.email,
        durationSeconds: about?.durationSeconds ?? state.durationSeconds,
        expiresAt: state.expiresAt,
        // Only a start still ahead (a follow-up asks about a grant already started). Workflow time.
        startsAt: !about && state.startsAt && Date.parse(state.startsAt) > Date.now() ? state.startsAt : null,
        accessRequestId: about?.accessRequestId ?? state.accessRequestId,
        reason: justification.reason,
        attachments: justification.attachments,
        reviewer: state.review?.reviewerId,
        comment: state.review?.comment,
        reviewNotices: Array.isArray(reviewNotices) ? (reviewNotices as string[]) : undefined,
      },
    });
  }

  /**
   * Shows the state: to operators (search attributes and the Web UI's current details) and to the
   * API's reads (the memo), each written only when it changed, in the workflow task that changed it.
   */
  publish(): void {
    this.publishes++;
    this.showDetails();
    const forReads = versions.grantMemo();
    const pairs = searchAttributePairs(this.state, now(), forReads);
    const snapshot = JSON.stringify(pairs.map((p) => p.value));
    if (snapshot !== this.published) {
      upsertSearchAttributes(pairs);
      this.published = snapshot;
    }
    if (forReads) {
      const memo = memoOf(this.state);
      const shown = JSON.stringify(memo);
      if (shown !== this.publishedMemo) {
        upsertMemo({ [GRANT_MEMO]: memo });
        this.publishedMemo = shown;
      }
    }
  }

  /** What the Web UI shows as the grant's details: not a command (it reads them with the workflow metadata query). */
  showDetails(): void {
    setCurrentDetails(currentDetails(this.state));
  }

  /**
   * Shows what changed where 1.0 showed nothing (after a message, a restore, a deprovisioning
   * round): behind the 1.1 patch, so 1.0's histories replay.
   */
  publishChanges(): void {
    if (versions.grantMemo()) this.publish();
  }

  recordRevocation(r: Revocation, byOperator = false): void {
    const { state } = this;
    state.revocation = r;
    const actor: AuditActor =
      byOperator || r === CANCELLED_BY_OPERATOR
        ? { type: 'operator', id: r.revokedBy }
        : { type: r.revokedBy === state.principal.id ? 'principal' : 'reviewer', id: r.revokedBy };
    // A grant revoked before anything was made is withdrawn (it ends revoked, with nothing to
    // remove): a request before any decision, or a scheduled grant before its start.
    const withdrawn = state.status === 'pending' && !state.denial && (!state.review || (state.approved && !!state.startsAt));
    this.audit(withdrawn ? 'withdrawn' : 'revoked', actor, { reason: r.reason ?? null, status: state.status });
    this.note({ level: 'info', code: 'revoked', message: `Revoked by ${r.revokedBy}${r.reason ? `: ${r.reason}` : ''}`, revoked_by: r.revokedBy });
  }

  requester(): AuditActor {
    return { type: 'principal', id: this.state.principal.id };
  }

  /** Where the grant's assignment (or group membership) is, for the activities. */
  assignment() {
    const { state } = this;
    const group = groupOf(state.key.target);
    return {
      tenantId: state.key.tenantId,
      accountId: group === undefined ? accountIdOf(state.key.target) : '',
      ...(group !== undefined && { group }),
      role: state.key.role,
      principal: { id: state.principal.id, email: state.principal.email, identityStoreUser: state.principal.identityStoreUser },
      ids: state.assignmentIds ?? undefined,
    };
  }
}

export function now(): Date {
  return new Date(Date.now());
}
