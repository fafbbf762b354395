// The grant workflow's messages and search attributes: everything a client needs to talk to it.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Diagnostic, EnsureRequest, GrantChange, GrantKey, GrantState, Principal, Revocation, Review } from '../domain/grant';
import type { AuditRecord } from '../domain/audit';

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
  /** Audit events for the caller to write (the same objects the workflow writes later): an extension's. */
  audit?: AuditRecord[];
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

/** Registered by temporal-dev.sh (types in docs/operations.md). */
export const searchAttributes = {
  tenant: defineSearchAttributeKey('AccessTenant', SearchAttributeType.KEYWORD),
  principal: defineSearchAttributeKey('AccessPrincipal', SearchAttributeType.KEYWORD),
  target: defineSearchAttributeKey('AccessTarget', SearchAttributeType.KEYWORD),
  role: defineSearchAttributeKey('AccessRole', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('AccessStatus', SearchAttributeType.KEYWORD),
  grantId: defineSearchAttributeKey('AccessGrantId', SearchAttributeType.KEYWORD),
  requestId: defineSearchAttributeKey('AccessRequestId', SearchAttributeType.KEYWORD),
  /** Every request the grant is part of (its own, its follow-ups'): a request is found by any of its ids. */
  requestIds: defineSearchAttributeKey('AccessRequestIds', SearchAttributeType.KEYWORD_LIST),
  /** A request of the grant waits for reviewers: what a reviewer's queue lists. */
  awaitingReview: defineSearchAttributeKey('AccessAwaitingReview', SearchAttributeType.BOOL),
  /** When an active grant ends: the "until when" column of the Web UI's workflow list. */
  expiresAt: defineSearchAttributeKey('AccessExpiresAt', SearchAttributeType.DATETIME),
};

/** The run's memo field holding its grant state (GrantState): what the API's reads answer from. */
export const GRANT_MEMO = 'grant';

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

/** A grant's end handed to its permission set's session workflow (workflows/sessions.ts). */
export interface SessionCutoffRequest {
  tenantId: string;
  userId: string;
  accountId: string;
  /** When the assignment was confirmed deleted: sessions issued before it are denied. */
  at: string;
  /** The grant that ended, to tell when it is done and to put on record; absent for a leftover reconciliation removed. */
  grant?: { workflowId: string; id: string; principal: { id: string; email?: string }; target: string; role: string };
}

export const sessionCutoffSignal = defineSignal<[SessionCutoffRequest]>('sessionCutoff');
/**
 * To the grant: its sessions are ended (the statement is in place and provisioned to its account).
 * `sessions_issued_before` is the moment written (never earlier than the grant's own cut-off);
 * `grant_id` names the run's grant, so a later run of the same key ignores it.
 */
export interface SessionsRevoked {
  at: string;
  sessions_issued_before?: string;
  grant_id?: string;
}
export const sessionsRevokedSignal = defineSignal<[SessionsRevoked]>('sessionsRevoked');
/** To the grant: the attempt failed and is retried; the message says why (`grant_id` as in sessionsRevoked). */
export const sessionRevocationFailedSignal = defineSignal<[{ message: string; grant_id?: string }]>('sessionRevocationFailed');

/** The permission set's session workflow: how many cut-offs it has applied, over all its runs. */
export const sessionsAppliedQuery = defineQuery<number>('applied');

/** The workflow id of a permission set's session cut-offs: one writer of its inline policy at a time. */
export function sessionsWorkflowId(permissionSetArn: string): string {
  // The ARN ends in {instance id}/{permission set id}.
  return `sessions/${permissionSetArn.split('/').slice(-2).join('/')}`;
}
