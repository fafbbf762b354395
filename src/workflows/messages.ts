// The grant workflow's messages and search attributes: everything a client needs to talk to it.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Diagnostic, EnsureRequest, GrantChange, GrantKey, GrantState, Principal, Revocation, Review } from '../domain/grant';

export interface GrantWorkflowInput {
  key: GrantKey;
  principal: Principal;
  /** Chosen by the caller that starts the run; ignored when the run already exists. */
  grantId: string;
  /** Carried over by continue-as-new. */
  state?: GrantState;
}

export interface EnsureOutcome {
  change: GrantChange;
  state: GrantState;
  diagnostics: Diagnostic[];
}

/** What a `reconcile` update found: the assignment was `present`, `restored`, restoring it `failed`, or the grant `ended` first. */
export interface ReconcileOutcome {
  outcome: 'present' | 'restored' | 'failed' | 'ended';
  message?: string;
}

/** Operators send these from the Web UI or `temporal workflow signal`: `{"reviewer": "alice", "comment": "ok"}`. */
export interface OperatorReview {
  reviewer: string;
  comment?: string;
}

export const grantStateQuery = defineQuery<GrantState>('grant');
export const ensureUpdate = defineUpdate<EnsureOutcome, [EnsureRequest]>('ensure');
export const reviewUpdate = defineUpdate<GrantState, [Review]>('review');
export const revokeUpdate = defineUpdate<GrantState, [Revocation]>('revoke');
/**
 * Sent by the reconciliation workflow when the grant's assignment is missing at the provider. The
 * grant's own sequence checks and re-creates it, so this can never race with its removal at expiry.
 */
export const reconcileUpdate = defineUpdate<ReconcileOutcome, []>('reconcile');
export const approveSignal = defineSignal<[OperatorReview]>('approve');
export const denySignal = defineSignal<[OperatorReview]>('deny');
export const revokeSignal = defineSignal<[Revocation]>('revoke');

/** Registered by temporal-dev.sh; all Keyword but AccessExpiresAt (Datetime). */
export const searchAttributes = {
  tenant: defineSearchAttributeKey('AccessTenant', SearchAttributeType.KEYWORD),
  principal: defineSearchAttributeKey('AccessPrincipal', SearchAttributeType.KEYWORD),
  target: defineSearchAttributeKey('AccessTarget', SearchAttributeType.KEYWORD),
  role: defineSearchAttributeKey('AccessRole', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('AccessStatus', SearchAttributeType.KEYWORD),
  grantId: defineSearchAttributeKey('AccessGrantId', SearchAttributeType.KEYWORD),
  requestId: defineSearchAttributeKey('AccessRequestId', SearchAttributeType.KEYWORD),
  /** When an active grant ends: the "until when" column of the Web UI's workflow list. */
  expiresAt: defineSearchAttributeKey('AccessExpiresAt', SearchAttributeType.DATETIME),
};

/**
 * Guards what grants started before it do not have in their histories: the AccessExpiresAt search
 * attribute (and its upsert on extension), and expires_at passed to deletion for the expiry-lag metric.
 */
export const EXPIRY_VISIBILITY_PATCH = 'expiry-visibility';

/**
 * Guards, in runs started after it: cancelling the workflow revokes the grant (the run completes as
 * `revoked`), and pending and provisioning runs continue-as-new when their history grows long.
 */
export const OPERATOR_SAFE_RUNS_PATCH = 'cancel-revokes-and-long-waits-continue';

/** Guards, in runs after it: a longer duration asked while provisioning is kept (`extended`). */
export const PROVISIONING_EXTENSION_PATCH = 'provisioning-extension';

/**
 * Guards, in runs after it: follow-up requests on an active grant: an extension of a reviewed
 * grant (`requested` while active) and the follow-up of a break-glass use. Histories from before
 * it never opened one, so no command changes there.
 */
export const FOLLOW_UP_REQUESTS_PATCH = 'follow-up-requests';

/** Failure types a workflow's update validators reject with; the API maps them to HTTP errors. */
export const rejection = {
  closing: 'GrantClosing',
  notPending: 'NotPending',
  selfReview: 'SelfReview',
  /** The reviewer already approved as another principal id (personOf). */
  alreadyApproved: 'AlreadyApproved',
  notOpen: 'NotOpen',
  /** `reconcile` on a grant that holds no assignment of its own right now (not active, closing, pre-existing). */
  notHolding: 'NotHolding',
} as const;

/** Guards the audit trail's activities (docs/audit.md), which grants started before it do not have in their histories. */
export const AUDIT_TRAIL_PATCH = 'audit-trail';

/**
 * Audit events written by a local activity within the workflow task that makes them (grant.ts,
 * auditingInTask): an extension's, and at the end the expiry's and the deprovisioning's, which
 * now wait until the deletion is done.
 */
export const AUDIT_IN_TASK_PATCH = 'audit-in-task';

/**
 * Retires AUDIT_IN_TASK_PATCH in runs after it: no local activity at all. Audit events go out in
 * batches, one ordinary activity in flight per grant, so a burst of extensions still costs a few
 * activities, never one per event (grant.ts, queueAudit). A local activity in the task that
 * carries an update is what made an ensure answer 500 under load (issue 24, docs/reliability.md).
 */
export const AUDIT_BATCHES_PATCH = 'audit-batches';

/** An extension leaves the expiry timer running; when it fires, the grant waits on for the rest (grant.ts, holdUntilExpiry). */
export const EXTENSION_KEEPS_TIMER_PATCH = 'extension-keeps-timer';
