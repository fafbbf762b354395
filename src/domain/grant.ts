// The grant's types and the pure rules over them. Imported by the workflow (so: deterministic,
// no I/O, no Node APIs) and by the API (for dry runs and the read-only path).
import type { AuditRecord } from './audit';
import type { OncallFacts, TicketFacts } from './facts';

export type GrantStatus = 'pending' | 'provisioning' | 'active' | 'expired' | 'revoked';
export type GrantChange = 'none' | 'activated' | 'requested' | 'extended';
export type ProvisioningStatus = 'pending' | 'successful' | 'failed';
export type DiagnosticLevel = 'info' | 'warning' | 'error';

/** What a tenant's webhooks may subscribe to. */
export const NOTIFICATION_EVENTS = ['review_requested', 'approved', 'denied', 'active', 'expiring', 'break_glass'] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];

/** The tenant's notification settings a grant keeps from its first ensure. */
export interface GrantNotifications {
  /** Events at least one webhook subscribes to. */
  events: NotificationEvent[];
  expiryWarningSeconds: number;
}

export const OPEN_STATUSES: readonly GrantStatus[] = ['pending', 'provisioning', 'active'];

export interface Diagnostic {
  level: DiagnosticLevel;
  code: string;
  message: string;
  [key: string]: unknown;
}

export interface Principal {
  id: string;
  email?: string;
  groups: string[];
  /**
   * The value of the tenant's `auth.user_claim`: what finds the user in the Identity Store (as
   * userName, then as email). Absent in grants from before the setting: those use email, else id.
   */
  identityStoreUser?: string;
}

/** What identifies a grant: one workflow per key. */
export interface GrantKey {
  tenantId: string;
  principalId: string;
  /** `AWS::Account::{12 digits}`, or `AWS::IdentityStore::Group::{name}` (role `member`) */
  target: string;
  role: string;
}

export interface Validation {
  has_reason: boolean;
  has_ticket_attachment: boolean;
  /** What the tenant's on-call source said of the requester at the call (issue 40); absent without one. */
  oncall?: OncallFacts;
  /** What the tenant's ticket source said of the ticket the justification names; absent without one. */
  ticket?: TicketFacts;
}

export interface Justification {
  reason?: string;
  attachments?: string[];
}

/** One entitlement of one ensure call, after validation and policy evaluation. */
export interface EnsureRequest {
  durationSeconds: number;
  /** `activate` permitted by policy: no reviewer needed. */
  autoApprove: boolean;
  justification: Justification;
  validation: Validation;
  /** How long a request waits for a reviewer before it closes. */
  pendingTtlSeconds: number;
  /** Why review is needed, who may review: shown to the requester. */
  reviewDiagnostics: Diagnostic[];
  /** Absent when the tenant has no webhooks. */
  notifications?: GrantNotifications;
  /**
   * The access request of the ensure call, made by the API once per call for every reviewed
   * entitlement. Absent from callers before it: the workflow then makes its own.
   */
  accessRequestId?: string;
  /** Distinct reviewers who must approve (the largest `@approvals` of the permitting policies); absent: 1. */
  approvalsRequired?: number;
  /** The call broke the glass: active at once (autoApprove), with a follow-up request for reviewers. */
  breakGlass?: boolean;
  /** How many entitlements of the call share `accessRequestId` (at most: some may change nothing): 1 means no other grant has the request. */
  requestGrants?: number;
  /** When access is to begin (`starts_at`), decided by the API to be later than the call; absent: now. */
  startsAt?: string;
}

/**
 * A request about a grant that is already active: an extension of a reviewed grant (approval
 * moves its expiry), or the follow-up of a break-glass use (approval acknowledges it, denial
 * revokes the grant). It has an access request id of its own; the grant stays active meanwhile.
 */
export interface FollowUp {
  kind: 'extension' | 'break_glass';
  accessRequestId: string;
  durationSeconds: number;
  justification: Justification;
  requestedAt: string;
  /** Opened + the tenant's pending-request TTL; the grant's expiry ends it sooner (followUpLapse). */
  lapsesAt: string;
  approvalsRequired: number;
  approvals: Decision[];
  denial: Decision | null;
  /** EnsureRequest.requestGrants of the call that opened it; absent: not known. */
  requestGrants?: number;
}

/** When a follow-up stops waiting for reviewers: its own lapse time or the grant's expiry, whichever first. */
export function followUpLapse(state: GrantState, f: FollowUp): string {
  return state.expiresAt && state.expiresAt < f.lapsesAt ? state.expiresAt : f.lapsesAt;
}

export function followUpApproved(f: FollowUp): boolean {
  return !f.denial && f.approvals.length >= f.approvalsRequired;
}

/** Still waiting for reviewers at `now`: undecided, not lapsed, the grant open and not being revoked. */
export function followUpPending(state: GrantState, f: FollowUp, now: Date): boolean {
  return !f.denial && !followUpApproved(f) && isOpen(state) && !state.revocation && now.getTime() < Date.parse(followUpLapse(state, f));
}

/** The grant's latest follow-up, if it still waits for reviewers. */
export function pendingFollowUp(state: GrantState, now: Date): FollowUp | undefined {
  const last = state.followUps?.at(-1);
  return last && followUpPending(state, last, now) ? last : undefined;
}

/**
 * The request id a grant answers with and is found by (AccessRequestId): its latest follow-up's,
 * else its own request's. Earlier ones stay in its state (README: how old requests are found).
 */
export function currentRequestId(state: GrantState): string | null {
  return state.followUps?.at(-1)?.accessRequestId ?? state.accessRequestId;
}

/** One reviewer's decision on one grant, as the grant records it. */
export interface Decision {
  reviewerId: string;
  /** The reviewer as a person (personOf): absent in decisions from before it. */
  reviewerUser?: string;
  /** The reviewer's email, lower case: absent in decisions from before it, and for principals without one. */
  reviewerEmail?: string;
  at: string;
  comment?: string;
}

export interface Review {
  decision: 'approve' | 'deny';
  reviewerId: string;
  /** personOf the reviewer: one person, whichever way they came (a token, a Slack click). */
  reviewerUser?: string;
  /** The reviewer's email, lower case: the same person by another of their names (reviewsOwn, approvedAsAnother). */
  reviewerEmail?: string;
  comment?: string;
  /** The request the reviewer saw: a grant under another request (a later one for the same key) refuses it. */
  accessRequestId?: string;
}

/**
 * The person behind a principal, the same whichever way they come in (a token, a Slack click): the
 * value of the tenant's user claim (default email), in lower case; grants from before it, email or id.
 */
export function personOf(p: Pick<Principal, 'id' | 'email' | 'identityStoreUser'>): string {
  return (p.identityStoreUser ?? p.email ?? p.id).toLowerCase();
}

/**
 * The reviewer is the requester: by principal id, by the user claim's value (personOf), or by email.
 * Either name is enough, so an entry that names someone one way (a Slack reviewer whose `user` is
 * stale) is still the same person the other; only a refusal follows from a match.
 */
export function reviewsOwn(r: Pick<Review, 'reviewerId' | 'reviewerUser' | 'reviewerEmail'>, requester: Pick<Principal, 'id' | 'email' | 'identityStoreUser'>): boolean {
  return (
    r.reviewerId === requester.id ||
    (r.reviewerUser !== undefined && r.reviewerUser === personOf(requester)) ||
    (r.reviewerEmail !== undefined && r.reviewerEmail === requester.email?.toLowerCase())
  );
}

/** An approval this person gave under another principal id (say, once by API and once from Slack), matched as reviewsOwn matches. */
export function approvedAsAnother(approvals: Decision[] | undefined, r: Pick<Review, 'decision' | 'reviewerId' | 'reviewerUser' | 'reviewerEmail'>): Decision | undefined {
  if (r.decision !== 'approve') return undefined;
  return (approvals ?? []).find(
    (a) =>
      a.reviewerId !== r.reviewerId &&
      ((r.reviewerUser !== undefined && a.reviewerUser === r.reviewerUser) || (r.reviewerEmail !== undefined && a.reviewerEmail === r.reviewerEmail)),
  );
}

/** This reviewer already gave this decision on the grant: a repeat (a retried review) changes nothing. */
/** A review as it is recorded on the request. */
export function decisionOf(r: Review, at: Date): Decision {
  return {
    reviewerId: r.reviewerId,
    ...(r.reviewerUser && { reviewerUser: r.reviewerUser }),
    ...(r.reviewerEmail && { reviewerEmail: r.reviewerEmail }),
    at: at.toISOString(),
    ...(r.comment ? { comment: r.comment } : {}),
  };
}

export function alreadyDecided(state: Pick<GrantState, 'approvals' | 'denial'>, r: Pick<Review, 'decision' | 'reviewerId'>): boolean {
  return r.decision === 'approve'
    ? (state.approvals ?? []).some((a) => a.reviewerId === r.reviewerId)
    : state.denial?.reviewerId === r.reviewerId;
}

export interface Revocation {
  revokedBy: string;
  reason?: string;
}

export interface GrantState {
  key: GrantKey;
  id: string;
  principal: Principal;
  /** `new` only between the workflow's start and its first ensure. */
  status: GrantStatus | 'new';
  approved: boolean;
  durationSeconds: number;
  requestedAt: string | null;
  activatedAt: string | null;
  expiresAt: string | null;
  pendingExpiresAt: string | null;
  accessRequestId: string | null;
  provisioningStatus: ProvisioningStatus;
  /** Set once the assignment has been looked up: true if it existed before this grant. */
  assignmentPreexisted: boolean | null;
  /** The provider's ids for the assignment, from that lookup: what deprovisioning deletes. */
  assignmentIds: AssignmentIds | null;
  /** True from the moment deprovisioning starts until the assignment is gone. */
  closing: boolean;
  validation: Validation;
  justification: Justification;
  /** The decision that closed the review: the last needed approval, or a denial. */
  review: Review | null;
  /**
   * An ensure that activated the grant while its request waited: the request is withdrawn. The
   * id is the break-glass use's follow-up; absent when a scheduled grant was started now.
   */
  supersededBy?: { accessRequestId?: string; at: string };
  /** When a scheduled grant is to begin (null or absent: at once); kept once it has begun. */
  startsAt?: string | null;
  /** EnsureRequest.requestGrants of the call that opened its request; absent: not known. */
  requestGrants?: number;
  /** Approvals so far, one per reviewer (absent in grants from before thresholds). */
  approvals?: Decision[];
  /** How many distinct reviewers must approve (absent: 1). */
  approvalsRequired?: number;
  /** The denial that closed the request, if one did. */
  denial?: Decision | null;
  /** When provisioning failed: a repeated ensure within a minute answers the failed grant. */
  failedAt?: string | null;
  revocation: Revocation | null;
  diagnostics: Diagnostic[];
  /** Absent in grants from before notifications, and when the tenant has no webhooks. */
  notifications?: GrantNotifications;
  /** When the expiry warning is due; null once sent or when there is none for this expiry. */
  expiryWarningAt?: string | null;
  /** Audit events this grant has written so far (kept across continue-as-new): each event's number makes its id. */
  auditSequence?: number;
  /** Audit events made while the previous run drained before continuing as new: this run writes them first. */
  auditBacklog?: AuditRecord[];
  /**
   * Audit events an update handed to its caller to write (an extension's: the API writes it before
   * it answers); the workflow writes them too at its next wake, so none is lost with the caller.
   */
  auditHandedOff?: AuditRecord[];
  /** Extension and break-glass requests, oldest first (the last ten); absent in grants from before them. */
  followUps?: FollowUp[];
}

export interface GrantView {
  id: string;
  name: string;
  status: GrantStatus;
  change: GrantChange;
  approved: boolean;
  duration_seconds: number;
  expires_at: string | null;
  activated_at: string | null;
  access_request_id: string | null;
  provisioning_status: ProvisioningStatus;
  validation: Validation;
  diagnostics: Diagnostic[];
  /** When a scheduled grant begins (or began); null when it was asked for at once. */
  starts_at: string | null;
  // Beyond the seed's fields, for the grants endpoints.
  target: string;
  role: string;
  principal_id: string;
}

// [0-9], not \d: the pattern is also the OpenAPI's, and a JSON Schema tool written in another
// language may read \d as any Unicode digit.
export const TARGET_PATTERN = /^AWS::Account::([0-9]{12})$/;

export function accountIdOf(target: string): string {
  const match = TARGET_PATTERN.exec(target);
  if (!match) throw new Error(`not an account target: ${target}`);
  return match[1];
}

/**
 * An Identity Store group, by its display name or id (the API keeps the name: one grant per group).
 * Letters, digits, spaces and `._@+=,-`: no quote or backslash, so the name is safe in a workflow
 * id and a visibility query.
 */
export const GROUP_TARGET_PATTERN = /^AWS::IdentityStore::Group::([A-Za-z0-9](?:[A-Za-z0-9 ._@+=,-]{0,126}[A-Za-z0-9._@+=,-])?)$/;
/** Either kind of target: the API's pattern. */
export const ENTITLEMENT_TARGET_PATTERN = new RegExp(`^(?:${TARGET_PATTERN.source.slice(1, -1)}|${GROUP_TARGET_PATTERN.source.slice(1, -1)})$`);
/** The one role of a group target: membership of the group. */
export const GROUP_ROLE = 'member';
export const GROUP_TARGET_PREFIX = 'AWS::IdentityStore::Group::';

/** The group a target names (its name or id), or undefined for an account target. */
export function groupOf(target: string): string | undefined {
  return GROUP_TARGET_PATTERN.exec(target)?.[1];
}

/**
 * What the grant's access is made of at the provider: an account assignment (user, permission
 * set, and the account in the key) or an Identity Store group membership (user, group).
 */
export type AssignmentIds = { userId: string; permissionSetArn: string; groupId?: undefined } | { userId: string; groupId: string; permissionSetArn?: undefined };

/** A grant that waits for its scheduled start (it may be approved already). */
export function isScheduled(state: GrantState): boolean {
  return (state.status === 'pending' || state.status === 'new') && !!state.startsAt;
}

/** What a scheduled grant tells its requester, and an ensure that asks for another start. */
export function scheduledDiagnostic(startsAt: string): Diagnostic {
  return { level: 'info', code: 'scheduled', message: `Access starts at ${startsAt}; an ensure without starts_at starts it now where policy lets it activate.`, starts_at: startsAt };
}

/**
 * Without `aws.revoke_sessions`, ending a grant removes the assignment but not the sessions already
 * open: a grant shorter than the permission set's session duration is told so (undefined: it is not).
 */
export function sessionMayOutliveGrant(sessionSeconds: number, durationSeconds: number): Diagnostic | undefined {
  if (sessionSeconds <= durationSeconds) return undefined;
  return {
    level: 'warning',
    code: 'session_may_outlive_grant',
    message:
      `AWS sessions from this grant may last up to ${sessionSeconds} s (the permission set's session duration), longer than the grant's ${durationSeconds} s: ` +
      'ending the grant removes the assignment, not sessions already open, unless the tenant sets aws.revoke_sessions.',
    session_duration_seconds: sessionSeconds,
    duration_seconds: durationSeconds,
  };
}

/**
 * A group grant ends with the membership, not with the sessions it let the user open: the
 * sessions' cut-off (`aws.revoke_sessions`) is per permission set and account, and a group's
 * assignments are not the grant's to know for sure. Always said of a group grant.
 */
export function groupSessionWarning(group: string, brings: readonly { account: string; permission_set: string }[]): Diagnostic {
  const through = brings.length > 0 ? brings.map((b) => `${b.permission_set} on ${b.account}`).join(', ') : "the group's account assignments";
  return {
    level: 'warning',
    code: 'session_may_outlive_grant',
    message:
      `Ending this grant removes the membership of ${group}; AWS sessions already opened through it (${through}) last until their permission set's session duration: ` +
      'aws.revoke_sessions does not end sessions reached through a group.',
    group,
  };
}

export function isOpen(state: GrantState): boolean {
  return state.status !== 'new' && OPEN_STATUSES.includes(state.status) && !state.closing;
}

export function grantName(key: Pick<GrantKey, 'target' | 'role'>): string {
  return `${key.role} on ${key.target}`;
}

/**
 * The principal id (from a token's `sub`) is the only free-form part of a grant key. Encoded,
 * it holds no separator, quote or backslash, so it is safe in a workflow id and a list query.
 */
export function encodePrincipal(principalId: string): string {
  return encodeURIComponent(principalId).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Workflow id of a grant key: readable by an operator, unambiguous. */
export function grantWorkflowId(key: GrantKey): string {
  const group = groupOf(key.target);
  const where = group === undefined ? accountIdOf(key.target) : `group:${encodePrincipal(group)}`;
  return `grant/${key.tenantId}/${encodePrincipal(key.principalId)}/${where}/${key.role}`;
}

/**
 * A repeated call moves `expires_at` only when that gains more than this: clients that ensure
 * before every command (a credential-process hook) then leave the grant alone, and only a real
 * extension reaches the workflow.
 */
export function extensionSlackMs(durationSeconds: number): number {
  return Math.min(300_000, durationSeconds * 100);
}

export type EnsureDecision =
  | { change: 'activated' | 'requested' }
  | { change: 'extended'; expiresAt: string | null }
  | { change: 'none'; diagnostics?: Diagnostic[] };

/** How long a grant whose provisioning failed answers a repeated ensure, before the next one tries again. */
export const FAILED_GRANT_ANSWERED_MS = 60_000;

/** The same justification: the same reason and attachments (blanks around them aside). */
export function sameJustification(a: Justification, b: Justification): boolean {
  const norm = (j: Justification) => JSON.stringify([(j.reason ?? '').trim(), (j.attachments ?? []).map((x) => x.trim())]);
  return norm(a) === norm(b);
}

/**
 * A closed grant that still answers an ensure for its key (CONTRACT §2): a denied one while the
 * justification is unchanged (asking again the same way would only ask the reviewers again), and
 * one whose provisioning failed less than a minute ago (a polling client sees the failure).
 */
export function closedGrantAnswers(state: GrantState, req: EnsureRequest, now: Date): boolean {
  if (state.status === 'new' || isOpen(state)) return false;
  if (state.denial || state.review?.decision === 'deny') return sameJustification(state.justification, req.justification);
  if (state.provisioningStatus === 'failed' && state.failedAt) return now.getTime() - Date.parse(state.failedAt) < FAILED_GRANT_ANSWERED_MS;
  return false;
}

/** A permitted break-glass ensure on a request still waiting for its first decision. */
export function supersedesPending(state: GrantState, req: EnsureRequest): boolean {
  return state.status === 'pending' && req.breakGlass === true && req.autoApprove && !state.review && !state.denial && !state.revocation;
}

/**
 * What an ensure does to a grant in `state` at time `now` (CONTRACT §2). The workflow applies
 * it; the API uses it to answer dry runs and to keep no-change calls off the workflow history.
 */
export function decideEnsure(state: GrantState | null, req: EnsureRequest, now: Date): EnsureDecision {
  if (state && closedGrantAnswers(state, req, now)) return { change: 'none' };
  if (!state || !isOpen(state)) return { change: req.autoApprove ? 'activated' : 'requested' };
  if (isScheduled(state)) {
    // Without starts_at the call wants access now: policy decides whether it may have it at once.
    if (req.startsAt === undefined && req.autoApprove) return { change: 'activated' };
    return { change: 'none', diagnostics: req.startsAt !== undefined && req.startsAt !== state.startsAt ? [scheduledDiagnostic(state.startsAt!)] : [] };
  }
  // Not yet active: the clock has not started, so a longer duration is simply kept.
  if (state.status === 'provisioning' && req.autoApprove && req.durationSeconds > state.durationSeconds) return { change: 'extended', expiresAt: null };
  // A permitted break-glass on a pending request: access now, the request superseded (CONTRACT §2).
  if (supersedesPending(state, req)) return { change: 'activated' };
  if (state.status !== 'active' || !state.expiresAt) return { change: 'none' };
  if (req.startsAt !== undefined) {
    const notice = `The grant is already active, until ${state.expiresAt}; a start time applies only when no grant is open, so nothing was changed.`;
    return { change: 'none', diagnostics: [{ level: 'info', code: 'schedule_ignored', message: notice, expires_at: state.expiresAt }] };
  }
  const wanted = new Date(now.getTime() + req.durationSeconds * 1000);
  if (wanted.getTime() <= Date.parse(state.expiresAt) + extensionSlackMs(req.durationSeconds)) return { change: 'none' };
  if (!req.autoApprove) {
    // A reviewed role: the extension is a request of its own, answered while it waits, and a
    // denied one answers the same justification (as a denied grant does).
    const last = state.followUps?.at(-1);
    if (last?.kind === 'extension' && (followUpPending(state, last, now) || (last.denial && sameJustification(last.justification, req.justification)))) {
      return { change: 'none' };
    }
    return { change: 'requested' };
  }
  return { change: 'extended', expiresAt: wanted.toISOString() };
}

export function toView(state: GrantState, change: GrantChange, extraDiagnostics: Diagnostic[] = []): GrantView {
  const status: GrantStatus = state.status === 'new' ? 'pending' : state.status;
  return {
    id: state.id,
    name: grantName(state.key),
    status,
    change,
    approved: state.approved,
    duration_seconds: state.durationSeconds,
    expires_at: state.expiresAt,
    activated_at: state.activatedAt,
    access_request_id: currentRequestId(state),
    provisioning_status: state.provisioningStatus,
    validation: state.validation,
    diagnostics: [...state.diagnostics, ...extraDiagnostics],
    starts_at: state.startsAt ?? null,
    target: state.key.target,
    role: state.key.role,
    principal_id: state.key.principalId,
  };
}

export function newGrantState(key: GrantKey, principal: Principal, id: string): GrantState {
  return {
    key,
    id,
    principal,
    status: 'new',
    approved: false,
    durationSeconds: 0,
    requestedAt: null,
    activatedAt: null,
    expiresAt: null,
    pendingExpiresAt: null,
    accessRequestId: null,
    provisioningStatus: 'pending',
    assignmentPreexisted: null,
    assignmentIds: null,
    closing: false,
    validation: { has_reason: false, has_ticket_attachment: false },
    justification: {},
    review: null,
    revocation: null,
    diagnostics: [],
  };
}

const TICKET_KEY = /^[A-Z][A-Z0-9]+-\d+$/;
const TICKET_URL = /^https?:\/\/\S+\/(browse|issues?|tickets?|requests?|pull|servicedesk|jira)\b/i;

export function validateJustification(justification: Justification | undefined): Validation {
  return {
    has_reason: (justification?.reason ?? '').trim().length > 0,
    has_ticket_attachment: (justification?.attachments ?? []).some(
      (a) => TICKET_KEY.test(a.trim()) || TICKET_URL.test(a.trim()),
    ),
  };
}
