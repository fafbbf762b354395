// Requests opened on a grant that already holds: an extension of a reviewed role, and the
// follow-up of a break-glass use that reviewers acknowledge or deny.
import { uuid4 } from '@temporalio/workflow';
import type { AuditActor } from '../../domain/audit';
import { alreadyDecided, decisionOf, type EnsureRequest, type FollowUp, type Review } from '../../domain/grant';
import type { GrantRecord } from './record';

/** Opens an extension request or a break-glass follow-up on the grant (it keeps the last ten). */
export function openFollowUp(grant: GrantRecord, kind: FollowUp['kind'], req: EnsureRequest, at: Date): void {
  const { state } = grant;
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
    ...(req.requestGrants !== undefined && { requestGrants: req.requestGrants }),
  };
  state.followUps = [...(state.followUps ?? []).slice(-9), f];
  grant.audit(
    kind === 'break_glass' ? 'break_glass_used' : 'extension_requested',
    grant.requester(),
    { duration_seconds: f.durationSeconds, reason: f.justification.reason ?? null, attachments: f.justification.attachments ?? [], lapses_at: f.lapsesAt },
    { accessRequestId: f.accessRequestId },
  );
  if (kind === 'break_glass') {
    grant.note({
      level: 'warning',
      code: 'break_glass',
      message: `Break-glass access: active without review. Reviewers are asked to acknowledge it (request ${f.accessRequestId}); a denial revokes it at once.`,
      access_request_id: f.accessRequestId,
    });
    grant.notify('break_glass', f);
    return;
  }
  const notices = req.reviewDiagnostics.flatMap((d) => (Array.isArray(d.notices) ? (d.notices as string[]) : []));
  grant.note({
    level: 'info',
    code: 'extension_requested',
    message: `Extending to ${req.durationSeconds} seconds needs ${f.approvalsRequired === 1 ? 'approval by a reviewer' : `${f.approvalsRequired} approvals`} (request ${f.accessRequestId}); the grant runs on to ${state.expiresAt} meanwhile. The request lapses at ${f.lapsesAt < state.expiresAt! ? f.lapsesAt : state.expiresAt} unless reviewed.`,
    access_request_id: f.accessRequestId,
    approvals_required: f.approvalsRequired,
    notices,
  });
  grant.notify('review_requested', f);
}

/** A review of a follow-up: a denied break-glass use revokes the grant; an approved extension extends it from the approval on. */
export function reviewFollowUp(grant: GrantRecord, f: FollowUp, r: Review, byOperator: boolean): void {
  if (alreadyDecided(f, r)) return;
  const { state } = grant;
  const at = new Date(Date.now());
  const decision = decisionOf(r, at);
  const actor: AuditActor = { type: byOperator ? 'operator' : 'reviewer', id: r.reviewerId };
  const what = f.kind === 'extension' ? 'extension' : 'break-glass use';
  const comment = r.comment ? `: ${r.comment}` : '';
  if (r.decision === 'deny') {
    f.denial = decision;
    grant.audit('denied', actor, { comment: r.comment ?? null, kind: f.kind }, { accessRequestId: f.accessRequestId });
    if (f.kind === 'break_glass') {
      grant.recordRevocation({ revokedBy: r.reviewerId, reason: `break-glass use denied${comment}` });
    } else {
      grant.note({ level: 'info', code: 'extension_denied', message: `The extension was denied by ${r.reviewerId}${comment}; the grant ends at ${state.expiresAt}.`, reviewer: r.reviewerId });
    }
    grant.publish();
    return;
  }
  f.approvals = [...f.approvals, decision];
  grant.audit(
    'approved',
    actor,
    { comment: r.comment ?? null, kind: f.kind, approvals: f.approvals.length, approvals_required: f.approvalsRequired, completes: f.approvals.length >= f.approvalsRequired },
    { accessRequestId: f.accessRequestId },
  );
  if (f.approvals.length < f.approvalsRequired) {
    grant.note({
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
      grant.expireAt(new Date(wanted).toISOString());
      state.durationSeconds = f.durationSeconds;
      grant.audit('extended', actor, { expires_at: state.expiresAt, duration_seconds: f.durationSeconds, by_extension_request: true }, { accessRequestId: f.accessRequestId });
    }
    grant.note({ level: 'info', code: 'extension_approved', message: `The extension was approved by ${by}${comment}.`, reviewer: r.reviewerId });
  } else {
    grant.note({ level: 'info', code: 'break_glass_acknowledged', message: `The break-glass use was acknowledged by ${by}${comment}.`, reviewer: r.reviewerId });
  }
  grant.publish();
}
