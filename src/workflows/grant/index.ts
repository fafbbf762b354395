// One grant's whole life: pending -> provisioning -> active -> expired, or revoked from any open
// state. The workflow wires the grant's messages to the entity (entity.ts) and runs its
// lifecycle (lifecycle.ts). Deterministic code only; all I/O is in activities.
import { CancellationScope, setHandler } from '@temporalio/workflow';
import type { GrantState } from '../../domain/grant';
import {
  approveSignal,
  denySignal,
  type EnsureOutcome,
  ensureUpdate,
  grantStateQuery,
  type GrantWorkflowInput,
  reconcileUpdate,
  reviewUpdate,
  revokeSignal,
  revokeUpdate,
  sessionRevocationFailedSignal,
  sessionsRevokedSignal,
} from '../messages';
import { Grant } from './entity';
import { lifecycle } from './lifecycle';
import { memoOf } from './view';

export async function grantWorkflow(input: GrantWorkflowInput): Promise<GrantState> {
  const grant = new Grant(input);
  // What a message changed is shown (search attributes, memo) in the workflow task that made it:
  // once, whether the message showed it itself or not.
  const shown =
    <A extends unknown[], R>(handle: (...args: A) => R) =>
    (...args: A): R => {
      const before = grant.publishes;
      const result = handle(...args);
      if (grant.publishes === before) grant.publishChanges();
      return result;
    };
  setHandler(grantStateQuery, () => grant.state);
  // The answer carries the state as the memo shows it: the events still to write go in `audit` only.
  const answered = (outcome: EnsureOutcome): EnsureOutcome => ({ ...outcome, state: memoOf(outcome.state) });
  setHandler(ensureUpdate, shown((req) => answered(grant.ensure(req))), { validator: (req) => grant.validateEnsure(req) });
  setHandler(reviewUpdate, shown((r) => grant.review(r)), { validator: (r) => grant.validateReview(r) });
  setHandler(revokeUpdate, shown((r) => grant.revoke(r)), { validator: (r) => grant.validateRevoke(r) });
  setHandler(reconcileUpdate, () => grant.reconcile(), { validator: () => grant.validateReconcile() });
  setHandler(approveSignal, shown((r) => grant.operatorReview('approve', r)));
  setHandler(denySignal, shown((r) => grant.operatorReview('deny', r)));
  setHandler(revokeSignal, shown((r) => void grant.revoke(r, true)));
  setHandler(sessionsRevokedSignal, (r) => grant.sessionsRevoked(r));
  setHandler(sessionRevocationFailedSignal, shown((r) => grant.sessionRevocationFailed(r)));

  // Events the previous run made while it drained before continuing as new (see Outbox).
  if (grant.state.auditBacklog?.length) grant.outbox.release();

  // Cancelling the workflow is a revoke. The lifecycle runs in a non-cancellable scope, so a
  // cancellation never abandons work in flight (a creation at AWS left mid-way would outlive the
  // run): a pending request closes, a creation in flight finishes and is removed, an active grant
  // is removed, a grant already being removed finishes. The run then completes with the grant's
  // state, as `revoked`, readable like any other closed grant (listing, the API and
  // reconciliation read completed runs; a cancelled run would have no result).
  CancellationScope.current().cancelRequested.catch(shown(() => grant.cancel()));
  return CancellationScope.nonCancellable(() => lifecycle(grant));
}
