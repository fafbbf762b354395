// An access request: the grants one ensure call asked a reviewer for (those sharing an
// access_request_id). It has no state of its own: it is composed from its grants' states.
import { type Decision, type GrantState, type GrantView, type Justification, toView } from './grant';

export const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'expired', 'withdrawn'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export interface AccessRequestView {
  id: string;
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
  return (state.status === 'pending' || state.status === 'new') && !state.review && !state.revocation;
}

/**
 * Every grant of a request gets the same decisions, so they agree; when they do not (a grant
 * withdrawn alone, a review half delivered) the strongest outcome speaks for the request.
 */
export function requestStatus(states: GrantState[]): RequestStatus {
  if (states.some((s) => s.denial || s.review?.decision === 'deny')) return 'denied';
  if (states.some((s) => s.review?.decision === 'approve')) return 'approved';
  if (states.some(awaitsReview)) return 'pending';
  // Revoked before any decision (by the requester, an admin, or a cancelled workflow).
  if (states.some((s) => s.revocation && !s.review)) return 'withdrawn';
  return 'expired';
}

export function toRequestView(id: string, states: GrantState[]): AccessRequestView {
  const first = states[0];
  const decision = (d: Decision) => ({ reviewer_id: d.reviewerId, at: d.at, comment: d.comment ?? null });
  // One entry per reviewer: the grants of a request record the same approvals.
  const approvals = new Map<string, Decision>();
  for (const s of states) for (const a of s.approvals ?? []) if (!approvals.has(a.reviewerId)) approvals.set(a.reviewerId, a);
  const denial = states.find((s) => s.denial)?.denial ?? null;
  const times = (pick: (s: GrantState) => string | null | undefined) => states.map(pick).filter((t): t is string => !!t).sort();
  return {
    id,
    status: requestStatus(states),
    principal_id: first.key.principalId,
    principal_email: first.principal.email ?? null,
    created_at: times((s) => s.requestedAt)[0] ?? new Date(0).toISOString(),
    expires_at: times((s) => s.pendingExpiresAt)[0] ?? null,
    justification: first.justification,
    approvals_required: Math.max(1, ...states.map((s) => s.approvalsRequired ?? 1)),
    approvals: [...approvals.values()].sort((a, b) => a.at.localeCompare(b.at)).map(decision),
    denial: denial ? decision(denial) : null,
    grants: states.map((s) => toView(s, 'none')),
  };
}
