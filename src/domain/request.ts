// An access request: the grants one ensure call asked a reviewer for (those sharing an
// access_request_id). It has no state of its own: it is composed from its grants' states.
import {
  type Decision,
  type FollowUp,
  followUpApproved,
  followUpLapse,
  followUpPending,
  type GrantState,
  type GrantView,
  type Justification,
  toView,
} from './grant';

export const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'expired', 'withdrawn'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export interface AccessRequestView {
  id: string;
  /** access: what an ensure call asked for; extension: a longer active grant; break_glass: a break-glass use to acknowledge. */
  kind: RequestPart['kind'];
  status: RequestStatus;
  principal_id: string;
  principal_email: string | null;
  created_at: string;
  expires_at: string | null;
  justification: Justification;
  approvals_required: number;
  approvals: { reviewer_id: string; at: string; comment: string | null }[];
  denial: { reviewer_id: string; at: string; comment: string | null } | null;
  grants: GrantView[];
}

/** A grant still waiting for its reviewers. */
export function awaitsReview(state: GrantState): boolean {
  // `approved` without a review: a scheduled grant policy activated, waiting only for its start.
  return (state.status === 'pending' || state.status === 'new') && !state.review && !state.revocation && !state.approved;
}

/**
 * What one grant contributes to one request: the grant's own request (the ensure call that
 * started it) or one of its follow-ups (an extension, a break-glass use), which keep their
 * decisions apart from the grant's own.
 */
export interface RequestPart {
  kind: 'access' | FollowUp['kind'];
  state: GrantState;
  status: RequestStatus;
  createdAt: string | null;
  expiresAt: string | null;
  justification: Justification;
  /** What this request asks for: the grant's duration, or a follow-up's own. */
  durationSeconds: number;
  approvalsRequired: number;
  approvals: Decision[];
  denial: Decision | null;
  /** Still waiting for reviewers (what a review may be sent to). */
  awaitsReview: boolean;
}

/** How many grants request `id` of this grant may have (see EnsureRequest.requestGrants); undefined: not known. */
export function requestGrantsOf(state: GrantState, id: string): number | undefined {
  return state.accessRequestId === id ? state.requestGrants : state.followUps?.find((f) => f.accessRequestId === id)?.requestGrants;
}

/** Every request id a grant is part of: its own, then its follow-ups'. */
export function requestIdsOf(state: GrantState): string[] {
  return [...(state.accessRequestId ? [state.accessRequestId] : []), ...(state.followUps ?? []).map((f) => f.accessRequestId)];
}

export function requestPartOf(state: GrantState, id: string, now: Date): RequestPart | null {
  if (state.accessRequestId === id) {
    const status: RequestStatus =
      state.denial || state.review?.decision === 'deny'
        ? 'denied'
        : state.review?.decision === 'approve'
          ? 'approved'
          : awaitsReview(state)
            ? 'pending'
            : state.revocation || state.supersededBy
              ? 'withdrawn' // revoked before any decision (by the requester, an admin, or a cancelled workflow), or superseded by break-glass
              : 'expired';
    return {
      kind: 'access',
      state,
      status,
      createdAt: state.requestedAt,
      expiresAt: state.pendingExpiresAt,
      justification: state.justification,
      durationSeconds: state.durationSeconds,
      approvalsRequired: state.approvalsRequired ?? 1,
      approvals: state.approvals ?? [],
      denial: state.denial ?? null,
      awaitsReview: awaitsReview(state),
    };
  }
  const f = state.followUps?.find((x) => x.accessRequestId === id);
  if (!f) return null;
  const pending = followUpPending(state, f, now);
  const status: RequestStatus = f.denial
    ? 'denied'
    : followUpApproved(f)
      ? 'approved'
      : pending
        ? 'pending'
        : state.revocation
          ? 'withdrawn' // the grant was revoked while it waited
          : 'expired';
  return {
    kind: f.kind,
    state,
    status,
    createdAt: f.requestedAt,
    expiresAt: followUpLapse(state, f),
    justification: f.justification,
    durationSeconds: f.durationSeconds,
    approvalsRequired: f.approvalsRequired,
    approvals: f.approvals,
    denial: f.denial,
    awaitsReview: pending,
  };
}

/**
 * Every grant of a request gets the same decisions, so they agree; when they do not (a grant
 * withdrawn alone, a review half delivered) the strongest outcome speaks for the request.
 */
export function requestStatus(parts: RequestPart[]): RequestStatus {
  for (const status of ['denied', 'approved', 'pending', 'withdrawn'] as const) if (parts.some((p) => p.status === status)) return status;
  return 'expired';
}

export function toRequestView(id: string, parts: RequestPart[]): AccessRequestView {
  const first = parts[0];
  const decision = (d: Decision) => ({ reviewer_id: d.reviewerId, at: d.at, comment: d.comment ?? null });
  // One entry per reviewer: the grants of a request record the same approvals.
  const approvals = new Map<string, Decision>();
  for (const p of parts) for (const a of p.approvals) if (!approvals.has(a.reviewerId)) approvals.set(a.reviewerId, a);
  const denial = parts.find((p) => p.denial)?.denial ?? null;
  const times = (pick: (p: RequestPart) => string | null) => parts.map(pick).filter((t): t is string => !!t).sort();
  return {
    id,
    kind: first.kind,
    status: requestStatus(parts),
    principal_id: first.state.key.principalId,
    principal_email: first.state.principal.email ?? null,
    created_at: times((p) => p.createdAt)[0] ?? new Date(0).toISOString(),
    expires_at: times((p) => p.expiresAt)[0] ?? null,
    justification: first.justification,
    approvals_required: Math.max(1, ...parts.map((p) => p.approvalsRequired)),
    approvals: [...approvals.values()].sort((a, b) => a.at.localeCompare(b.at)).map(decision),
    denial: denial ? decision(denial) : null,
    grants: parts.map((p) => toView(p.state, 'none')),
  };
}
