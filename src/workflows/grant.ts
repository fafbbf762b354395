// One grant's whole life: pending -> provisioning -> active -> expired, or revoked from any
// open state. Deterministic code only; all I/O is in activities.
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { GrantActivities } from '../activities';
import {
  accountIdOf,
  decideEnsure,
  encodePrincipal,
  type Diagnostic,
  type EnsureRequest,
  isOpen,
  newGrantState,
  type GrantState,
  type Review,
  type Revocation,
} from '../domain/grant';
import {
  approveSignal,
  denySignal,
  ensureUpdate,
  type EnsureOutcome,
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

// Deprovisioning never gives up: the workflow keeps calling until the assignment is gone.
const deprovisioning = proxyActivities<GrantActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

/** A run that has not been given its first ensure within this time was started by mistake. */
const FIRST_ENSURE_TIMEOUT = '1 minute';
/** Continue-as-new well before Temporal's own limits, so a hot grant's history stays small. */
const MAX_HISTORY_EVENTS = 2000;

export async function grantWorkflow(input: GrantWorkflowInput): Promise<GrantState> {
  const state = input.state ?? newGrantState(input.key, input.principal, input.grantId);
  const ref = () => ({
    tenantId: state.key.tenantId,
    accountId: accountIdOf(state.key.target),
    role: state.key.role,
    principal: { id: state.principal.id, email: state.principal.email },
    ids: state.assignmentIds ?? undefined,
  });
  const now = () => new Date(Date.now());
  const note = (diagnostic: Diagnostic) => {
    state.diagnostics = [...state.diagnostics.filter((d) => d.code !== diagnostic.code), diagnostic];
  };
  const expireAt = (expiresAt: string) => {
    state.expiresAt = expiresAt;
    note({ level: 'info', code: 'expires', message: `Access ends at ${expiresAt}; ensure again to extend it.`, expires_at: expiresAt });
  };

  /** The latest time recorded in the history: the workflow's clock is never taken to be earlier. */
  let clockFloor = 0;
  let published = '';
  const publish = () => {
    const status = state.status === 'new' ? 'pending' : state.status;
    const pairs = [
      { key: searchAttributes.tenant, value: state.key.tenantId },
      { key: searchAttributes.principal, value: encodePrincipal(state.key.principalId) },
      { key: searchAttributes.target, value: state.key.target },
      { key: searchAttributes.role, value: state.key.role },
      { key: searchAttributes.grantId, value: state.id },
      { key: searchAttributes.status, value: status },
      ...(state.accessRequestId ? [{ key: searchAttributes.requestId, value: state.accessRequestId }] : []),
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
      if (req.autoApprove) {
        state.approved = true;
        state.status = 'provisioning';
      } else {
        state.status = 'pending';
        state.accessRequestId = uuid4();
        state.pendingExpiresAt = new Date(at.getTime() + req.pendingTtlSeconds * 1000).toISOString();
        req.reviewDiagnostics.forEach(note);
      }
      publish();
      return { change: req.autoApprove ? 'activated' : 'requested', state, diagnostics: [] };
    }
    const decision = decideEnsure(state, req, at);
    if (decision.change === 'extended') {
      expireAt(decision.expiresAt);
      state.durationSeconds = req.durationSeconds;
      return { change: 'extended', state, diagnostics: [] };
    }
    return { change: 'none', state, diagnostics: decision.change === 'none' ? (decision.diagnostics ?? []) : [] };
  };

  const requirePending = (reviewerId: string) => {
    if (state.status !== 'pending' || state.review) {
      throw ApplicationFailure.nonRetryable(`the request is ${state.review ? 'already reviewed' : state.status}`, rejection.notPending);
    }
    if (reviewerId === state.principal.id) throw ApplicationFailure.nonRetryable('nobody reviews their own request', rejection.selfReview);
  };
  const review = (r: Review) => {
    state.review = r;
    state.approved = r.decision === 'approve';
    note({
      level: 'info',
      code: r.decision === 'approve' ? 'approved' : 'denied',
      message: `${r.decision === 'approve' ? 'Approved' : 'Denied'} by ${r.reviewerId}${r.comment ? `: ${r.comment}` : ''}`,
      reviewer: r.reviewerId,
    });
  };
  const revoke = (r: Revocation) => {
    if (!isOpen(state) || state.revocation) return;
    state.revocation = r;
    note({ level: 'info', code: 'revoked', message: `Revoked by ${r.revokedBy}${r.reason ? `: ${r.reason}` : ''}`, revoked_by: r.revokedBy });
  };

  setHandler(grantStateQuery, () => state);
  setHandler(ensureUpdate, ensure, {
    validator: (_req: EnsureRequest) => {
      if (state.status !== 'new' && !isOpen(state)) {
        throw ApplicationFailure.nonRetryable('the grant is closing; a new one starts once it has closed', rejection.closing);
      }
    },
  });
  setHandler(reviewUpdate, (r) => (review(r), state), { validator: (r) => requirePending(r.reviewerId) });
  setHandler(revokeUpdate, (r) => (revoke(r), state), {
    validator: (_r: Revocation) => {
      if (!isOpen(state) || state.revocation) throw ApplicationFailure.nonRetryable(`the grant is ${state.status}`, rejection.notOpen);
    },
  });
  const operatorReview = (decision: Review['decision']) => (r: OperatorReview) => {
    try {
      requirePending(r.reviewer);
      review({ decision, reviewerId: r.reviewer, comment: r.comment });
    } catch (err) {
      log.warn('operator review ignored', { reason: (err as Error).message });
    }
  };
  setHandler(approveSignal, operatorReview('approve'));
  setHandler(denySignal, operatorReview('deny'));
  setHandler(revokeSignal, revoke);

  publish();
  if (state.status === 'new' && !(await condition(() => state.status !== 'new', FIRST_ENSURE_TIMEOUT))) return state;

  if (state.status === 'pending') await awaitReview();
  if (state.status === 'provisioning') await provision();
  if (state.status === 'active') await holdUntilExpiry();
  await condition(allHandlersFinished);
  return state;

  async function awaitReview(): Promise<void> {
    const waitMs = Math.max(0, Date.parse(state.pendingExpiresAt!) - Date.now());
    const decided = await condition(() => state.review !== null || state.revocation !== null, waitMs);
    if (state.revocation) {
      state.status = 'revoked';
    } else if (!decided) {
      state.status = 'expired';
      note({ level: 'info', code: 'request_expired', message: `Nobody reviewed the request before ${state.pendingExpiresAt}` });
    } else {
      state.status = state.review!.decision === 'approve' ? 'provisioning' : 'revoked';
    }
    publish();
  }

  async function provision(): Promise<void> {
    // The activity's clock, recorded in the history (none in histories from before it returned one).
    // The workflow's own clock right after a worker crash can lag behind, and differently on replay.
    let assignedAt: string | undefined;
    try {
      if (state.assignmentPreexisted === null) {
        const found = await provisioning.findAssignment(ref());
        state.assignmentPreexisted = found.exists;
        state.assignmentIds = found.ids;
      }
      if (!state.assignmentPreexisted) assignedAt = (await provisioning.createAssignment(ref()))?.assignedAt;
    } catch (err) {
      state.provisioningStatus = 'failed';
      state.status = 'revoked';
      note({ level: 'error', code: 'provisioning_failed', message: providerReason(err) });
      publish();
      // A creation that timed out may still have happened at the provider: make sure it is gone.
      if (state.assignmentPreexisted === false) await deprovision();
      return;
    }
    const at = assignedAt ? new Date(assignedAt) : now();
    clockFloor = at.getTime();
    state.provisioningStatus = 'successful';
    state.status = 'active';
    state.activatedAt = at.toISOString();
    expireAt(new Date(at.getTime() + state.durationSeconds * 1000).toISOString());
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
    for (;;) {
      const expiresAt = state.expiresAt;
      const remaining = Date.parse(expiresAt!) - Math.max(Date.now(), clockFloor);
      if (state.revocation || (remaining <= 0 && !timerDecides)) break;
      const woken = await condition(
        () => state.expiresAt !== expiresAt || state.revocation !== null || historyIsLong(),
        Math.max(remaining, 1),
      );
      if (!woken && timerDecides) break;
      if (historyIsLong() && !state.revocation) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof grantWorkflow>({ ...input, state });
      }
    }
    state.closing = true;
    publish();
    if (!state.assignmentPreexisted) await deprovision();
    state.status = state.revocation ? 'revoked' : 'expired';
    publish();
  }

  async function deprovision(): Promise<void> {
    for (let round = 1; ; round++) {
      try {
        await deprovisioning.deleteAssignment(ref());
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

function historyIsLong(): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength > MAX_HISTORY_EVENTS;
}

function providerReason(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}
