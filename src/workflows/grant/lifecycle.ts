// The grant's lifecycle as phases: awaitReview -> provision -> holdUntilExpiry -> close. Each
// phase returns once the grant's status has moved past it; messages (entity.ts) change the state
// meanwhile, and the phases act on it.
import { allHandlersFinished, condition, continueAsNew, sleep, workflowInfo } from '@temporalio/workflow';
import type { AssignmentLookup } from '../../activities';
import type { AuditActor } from '../../domain/audit';
import { type GrantState, sessionMayOutliveGrant } from '../../domain/grant';
import { deciding, deprovisioning, provisioning, restoring } from './calls';
import type { Grant } from './entity';
import { now } from './record';
import { lookupOf, providerReason } from './failures';
import { versions } from '../versions';

/** A run that has not been given its first ensure within this time was started by mistake. */
const FIRST_ENSURE_TIMEOUT = '1 minute';
/** Continue-as-new well before Temporal's own limits, so a hot grant's history stays small. */
const MAX_HISTORY_EVENTS = 2000;

const system = (id: string): AuditActor => ({ type: 'system', id });

export async function lifecycle(grant: Grant): Promise<GrantState> {
  const { state } = grant;
  grant.publish();
  if (state.status === 'new' && !(await condition(() => state.status !== 'new', FIRST_ENSURE_TIMEOUT))) return state;
  if (state.status === 'pending' && !state.approved) await awaitReview(grant);
  // Approved (by policy or reviewers) but scheduled for later.
  if (state.status === 'pending') await awaitStart(grant);
  if (state.status === 'provisioning') await provision(grant);
  if (state.status === 'active') {
    await holdUntilExpiry(grant);
    await close(grant);
  }
  // Whatever an extension handed off after close() took the rest (or on a path close() never ran).
  grant.outbox.writeHandedOff();
  await grant.outbox.settled();
  await condition(allHandlersFinished);
  return state;
}

/** Until a reviewer decides, the requester withdraws, a break-glass use supersedes the request, or it lapses. */
async function awaitReview(grant: Grant): Promise<void> {
  const { state } = grant;
  if (!grant.continued) grant.notify('review_requested');
  const undecided = () => state.review === null && state.revocation === null && state.status === 'pending';
  const waitMs = Math.max(0, Date.parse(state.pendingExpiresAt!) - Date.now());
  // A long history wakes it too: messages that change nothing (ignored signals, ensures that
  // find the request pending) still grow it, and a request may wait days for a reviewer.
  const woken = await condition(() => !undecided() || historyIsLong(), waitMs);
  // Returns only if the request was decided while the handlers finished.
  if (woken && undecided()) await continueAsNewIfIdle(grant, undecided);
  if (state.revocation) {
    state.status = 'revoked';
  } else if (state.supersededBy) {
    // Activated by a break-glass use: it provisions as an approved grant would.
  } else if (!woken) {
    state.status = 'expired';
    grant.note({ level: 'info', code: 'request_expired', message: `Nobody reviewed the request before ${state.pendingExpiresAt}` });
    grant.audit('expired', system('expiry'), { phase: 'pending', pending_expires_at: state.pendingExpiresAt });
  } else {
    // Approved ahead of a scheduled start: it waits for it (awaitStart).
    state.status = state.review!.decision === 'approve' ? (state.startsAt ? 'pending' : 'provisioning') : 'revoked';
  }
  grant.publish();
  if (state.review) grant.notify(state.review.decision === 'approve' ? 'approved' : 'denied');
}

/**
 * A scheduled grant, approved, until its start: a durable timer, always set (even for a start
 * already past) so that the clock never decides on its own (see holdUntilExpiry). An ensure that
 * starts it now, or a revoke (which withdraws it), ends the wait sooner.
 */
async function awaitStart(grant: Grant): Promise<void> {
  const { state } = grant;
  const waiting = () => state.status === 'pending' && state.revocation === null;
  let due = false;
  for (;;) {
    const woken = await condition(() => !waiting() || historyIsLong(), Math.max(Date.parse(state.startsAt!) - Date.now(), 1));
    if (!woken) {
      state.status = 'provisioning';
      due = true;
    }
    if (!waiting()) break;
    await continueAsNewIfIdle(grant, waiting);
  }
  // Started by its own clock, not by a call that policy just decided: decided again now.
  if (due && !state.revocation && versions.scheduledStartCheck()) await decideStartAgain(grant);
  if (state.revocation) state.status = 'revoked';
  state.diagnostics = state.diagnostics.filter((d) => d.code !== 'scheduled');
  grant.publish();
}

/**
 * Today's policies, the account as configured now and the requester as the grant keeps them: a
 * start they no longer allow is withdrawn, with nothing made (issue 35 §5).
 */
async function decideStartAgain(grant: Grant): Promise<void> {
  const { state } = grant;
  const { key, principal, durationSeconds, justification, startsAt, requestedAt, review, validation } = state;
  const decision = await deciding.authorizeStart({ key, principal, durationSeconds, justification, startsAt, requestedAt, review, validation });
  // A revoke while it was decided withdraws it anyway (awaitStart).
  if (decision.allowed || state.revocation) return;
  state.status = 'revoked';
  grant.audit('withdrawn', system('schedule'), { reason: 'no longer allowed by policy at its start', status: 'pending', policies: decision.policyIds, notices: decision.notices });
  grant.note({
    level: 'warning',
    code: 'start_not_allowed',
    message: `Withdrawn at its start (${startsAt}): policy no longer allows it. ${decision.notices.join(' ')}`,
    notices: decision.notices,
    policies: decision.policyIds,
  });
}

/** Makes the account assignment (or finds it already there); the grant's clock starts when it exists. */
async function provision(grant: Grant): Promise<void> {
  const { state } = grant;
  // The last point with no activity in flight: a run that grew long while it waited for its
  // review continues here, and its successor provisions from the start (nothing looked yet).
  if (historyIsLong() && !state.revocation) await continueAsNewIfIdle(grant, () => state.revocation === null);
  if (state.revocation) {
    // Revoked before anything was made: nothing to remove.
    state.status = 'revoked';
    grant.publish();
    return;
  }
  let made;
  try {
    made = await provisioning.provisionAssignment(grant.assignment());
  } catch (err) {
    return failProvisioning(grant, err);
  }
  state.assignmentPreexisted = made.preexisted;
  state.assignmentIds = made.ids;
  // The activity's clock, recorded in the history: the workflow's own clock right after a worker
  // crash can lag behind, and differently on replay.
  const at = new Date(made.assignedAt);
  grant.clockFloor = at.getTime();
  state.provisioningStatus = 'successful';
  state.status = 'active';
  state.activatedAt = at.toISOString();
  grant.expireAt(new Date(at.getTime() + state.durationSeconds * 1000).toISOString());
  grant.audit(
    'activated',
    system('provisioning'),
    {
      preexisted: state.assignmentPreexisted,
      assignment_ids:
        state.assignmentIds &&
        (state.assignmentIds.groupId !== undefined
          ? { user_id: state.assignmentIds.userId, group_id: state.assignmentIds.groupId }
          : { user_id: state.assignmentIds.userId, permission_set_arn: state.assignmentIds.permissionSetArn }),
      expires_at: state.expiresAt,
      duration_seconds: state.durationSeconds,
      reason: state.justification.reason ?? null,
      approved_by: state.approvals?.length ? state.approvals.map((a) => a.reviewerId) : state.review?.decision === 'approve' ? [state.review.reviewerId] : [],
    },
    { at: state.activatedAt },
  );
  grant.notify('active');
  const outlives = made.sessionSeconds !== undefined && sessionMayOutliveGrant(made.sessionSeconds, state.durationSeconds);
  if (outlives) grant.note(outlives);
  if (state.assignmentPreexisted) {
    grant.note({
      level: 'info',
      code: 'assignment_preexisted',
      message: 'The account assignment existed before this grant; it will be left in place when the grant ends.',
    });
  }
  grant.publish();
}

/** The grant closes as revoked, saying why; a creation that timed out may still have happened at the provider, so it is removed. */
async function failProvisioning(grant: Grant, err: unknown): Promise<void> {
  const { state } = grant;
  // A failed provisionAssignment carries what its look found, if it got that far.
  const found: AssignmentLookup | undefined = lookupOf(err);
  if (found) {
    state.assignmentPreexisted = found.preexisted;
    state.assignmentIds = found.ids;
  }
  state.provisioningStatus = 'failed';
  state.status = 'revoked';
  state.failedAt = now().toISOString();
  grant.note({ level: 'error', code: 'provisioning_failed', message: providerReason(err) });
  grant.audit('provisioning_failed', system('provisioning'), { message: providerReason(err), preexisted: state.assignmentPreexisted });
  grant.publish();
  if (state.assignmentPreexisted === false) {
    const deleted = await deprovision(grant);
    grant.audit('deprovisioned', system('deprovisioning'), { ended: 'provisioning_failed' });
    if (deleted?.sessionCutoff) await awaitSessionsEnded(grant, deleted.sessionCutoff);
  }
}

/**
 * Until the expiry timer fires or the grant is revoked. Only the timer decides that the time is up,
 * never a comparison with the clock: right after a worker crash the workflow's clock can differ
 * between the live run and a replay (and lag behind). An extension does not wake the wait: the
 * timer, once it fires, sees the later expiry and waits again for the rest.
 */
async function holdUntilExpiry(grant: Grant): Promise<void> {
  const { state } = grant;
  for (;;) {
    if (state.revocation) return;
    const expiresAt = state.expiresAt;
    const clock = Math.max(Date.now(), grant.clockFloor);
    const remaining = Date.parse(expiresAt!) - clock;
    const warnIn = state.expiryWarningAt ? Date.parse(state.expiryWarningAt) - clock : Infinity;
    if (warnIn <= 0) {
      state.expiryWarningAt = null;
      grant.notify('expiring');
      continue;
    }
    const untilWarning = warnIn < remaining;
    const woken = await condition(
      () => state.revocation !== null || historyIsLong() || grant.reconcilePending() || grant.outbox.handedOffPiling(),
      Math.max(untilWarning ? warnIn : remaining, 1),
    );
    // An extension taken in the same workflow task as the expiry timer wins: its caller was told
    // `extended`. Temporal's core hands a task's updates to the workflow before its fired timers
    // (sdk-core #639): the changed expiry keeps the loop going (test/races.test.ts holds this).
    if (!woken && !untilWarning && state.expiresAt === expiresAt) return;
    // Any other wake writes what extensions handed to their callers (close() takes them at the end).
    grant.outbox.writeHandedOff();
    // Woken before the expiry timer fired, so the grant still holds: re-create what was removed.
    if (woken && grant.reconcilePending() && !state.revocation) await restoreAssignment(grant);
    if (historyIsLong() && !state.revocation) await continueAsNewIfIdle(grant, () => state.revocation === null);
  }
}

/** The grant is ending (expired or revoked): its assignment is removed, unless it was there before the grant. */
async function close(grant: Grant): Promise<void> {
  const { state } = grant;
  // Nothing is re-created from here on.
  grant.reconciled = { outcome: 'ended' };
  grant.reconcileServed = grant.reconcileAsked;
  state.closing = true;
  const endedAt = now().toISOString();
  // A reader of the memo sees an expiring grant active until its access has ended and its last
  // events are written, then expired (1.4): a burst of expiries writes visibility once each, after
  // the deletions. Messages (queries, updates) and the Web UI's details see `closing` meanwhile.
  if (!state.revocation && versions.expiryShownOnce()) {
    grant.showDetails();
    return endAtExpiry(grant, endedAt);
  }
  grant.publish();
  if (!state.revocation && versions.expiryInOneActivity()) return endAtExpiry(grant, endedAt);
  grant.outbox.writeHandedOff();
  // An expiry (not a revocation) tells the activity when access should have ended: the expiry-lag metric.
  const deleted = state.assignmentPreexisted ? undefined : await deprovision(grant, state.revocation ? undefined : (state.expiresAt ?? undefined));
  // Both events are written after the deletion, in one batch.
  if (!state.revocation) grant.audit('expired', system('expiry'), { expires_at: state.expiresAt, preexisted: state.assignmentPreexisted }, { at: endedAt });
  if (!state.assignmentPreexisted) grant.audit('deprovisioned', system('deprovisioning'), { ended: state.revocation ? 'revoked' : 'expired' });
  state.status = state.revocation ? 'revoked' : 'expired';
  grant.publish();
  if (deleted?.sessionCutoff) await awaitSessionsEnded(grant, deleted.sessionCutoff);
}

/**
 * An expiry with one activity (1.3; 1.4 the same, without showing `closing` first): it deletes
 * the assignment (unless it was there before the grant), then writes the grant's last audit
 * events, and the run completes in the workflow task that sees it done: two tasks and one
 * activity, where 1.2 took three tasks and two activities (a separate activity for the events,
 * and a task for each). The activity is scheduled, so its effects follow the task that decided
 * the expiry: an update or signal that arrives meanwhile meets a grant already closing. Events it
 * could not write go to the outbox.
 */
async function endAtExpiry(grant: Grant, endedAt: string): Promise<void> {
  const { state } = grant;
  const own = !state.assignmentPreexisted;
  // What extensions handed to their callers goes with them.
  const events = [...grant.outbox.takeHandedOff(), grant.auditRecord('expired', system('expiry'), { expires_at: state.expiresAt, preexisted: state.assignmentPreexisted }, { at: endedAt })];
  const deprovisioned = own ? grant.auditRecord('deprovisioned', system('deprovisioning'), { ended: 'expired' }) : undefined;
  const ref = own ? { ...grant.assignment(), grantId: state.id, expiredAt: state.expiresAt! } : undefined;
  // Shown once below, with the grant expired.
  const ended = await untilRemoved(grant, () => deprovisioning.endAccess({ ref, events, deprovisioned }), false);
  if (!ended.audited) {
    events.forEach((e) => grant.outbox.audit(e));
    if (deprovisioned) grant.outbox.audit({ ...deprovisioned, at: ended.endedAt });
  }
  state.status = 'expired';
  grant.publish();
  if (ended.sessionCutoff) await awaitSessionsEnded(grant, ended.sessionCutoff);
}

/** How long a closed grant's run waits to hear its sessions were ended (a new grant for its key waits for the run, at most 90 s); the permission set's workflow keeps at it regardless. */
const SESSIONS_WAIT = '1 minute';

/** The tenant ends sessions too (`aws.revoke_sessions`): the grant says so until it hears they are. */
async function awaitSessionsEnded(grant: Grant, cutoff: string): Promise<void> {
  grant.note({
    level: 'info',
    code: 'session_revocation_pending',
    message: `AWS sessions issued before ${cutoff} are being ended (a Deny in the permission set's inline policy).`,
    sessions_issued_before: cutoff,
  });
  grant.publish();
  if (await condition(() => grant.sessionsRevokedAt !== null, SESSIONS_WAIT)) {
    grant.state.diagnostics = grant.state.diagnostics.filter((d) => d.code !== 'session_revocation_pending');
    const written = grant.sessionsIssuedBefore ?? cutoff;
    grant.note({ level: 'info', code: 'sessions_revoked', message: `AWS sessions issued before ${written} were ended at ${grant.sessionsRevokedAt}.`, sessions_issued_before: written });
  } else {
    grant.note({
      level: 'warning',
      code: 'session_revocation_pending',
      message: `Ending AWS sessions issued before ${cutoff} was not confirmed within ${SESSIONS_WAIT}; it is still being retried, and the audit trail's sessions_revoked event says when it is done.`,
      sessions_issued_before: cutoff,
    });
  }
  grant.publish();
}

/**
 * Re-creates the assignment if it was removed behind the grant's back. Runs in the main sequence,
 * between expiry checks, so it never overlaps deprovisioning. It is awaited to the end even past
 * the expiry: were it abandoned, a creation still in progress at AWS could land after the
 * deletion and outlive the grant.
 */
async function restoreAssignment(grant: Grant): Promise<void> {
  const upTo = grant.reconcileAsked;
  try {
    const { created } = await restoring.createAssignment(grant.assignment());
    grant.reconciled = { outcome: created ? 'restored' : 'present' };
    grant.state.diagnostics = grant.state.diagnostics.filter((d) => d.code !== 'assignment_restore_failed');
    if (created) {
      grant.audit('assignment_restored', system('reconciliation'), {});
      grant.note({
        level: 'warning',
        code: 'assignment_restored',
        message: `The account assignment had been removed outside this service; it was re-created at ${now().toISOString()}.`,
      });
    }
  } catch (err) {
    grant.reconciled = { outcome: 'failed', message: providerReason(err) };
    grant.note({ level: 'warning', code: 'assignment_restore_failed', message: `Re-creating the removed account assignment failed: ${providerReason(err)}` });
  }
  grant.reconcileServed = upTo;
  grant.publishChanges();
}

/** Until the assignment is gone; answers what the deletion says (null from runs recorded before it said anything). */
async function deprovision(grant: Grant, expiredAt?: string): Promise<{ sessionCutoff?: string } | undefined> {
  return (await untilRemoved(grant, () => deprovisioning.deleteAssignment({ ...grant.assignment(), grantId: grant.state.id, ...(expiredAt && { expiredAt }) }))) ?? undefined;
}

/** Calls `remove` in rounds until it succeeds; a failing round shows as a diagnostic (and its end, with `showEnd`). */
async function untilRemoved<T>(grant: Grant, remove: () => Promise<T>, showEnd = true): Promise<T> {
  for (let round = 1; ; round++) {
    try {
      const removed = await remove();
      grant.state.diagnostics = grant.state.diagnostics.filter((d) => d.code !== 'deprovisioning_retrying');
      if (showEnd) grant.publishChanges();
      return removed;
    } catch (err) {
      grant.note({
        level: 'warning',
        code: 'deprovisioning_retrying',
        message: `Removing the account assignment failed (${providerReason(err)}); still retrying.`,
        rounds: round,
      });
      grant.publishChanges();
      await sleep(Math.min(60_000, 5_000 * round));
    }
  }
}

/**
 * The one place a run continues as new, called by a phase with no activity in flight once the
 * history is long. The run goes on in a new one once its notifications and audit events are out
 * and no handler runs, if `stillIdle` still holds then; otherwise this returns and the phase goes
 * on (a reconcile asked meanwhile is served first).
 */
async function continueAsNewIfIdle(grant: Grant, stillIdle: () => boolean): Promise<void> {
  grant.outbox.hold();
  await grant.outbox.settled();
  await condition(() => allHandlersFinished() || grant.reconcilePending());
  if (stillIdle() && !grant.reconcilePending()) await continueAsNew({ ...grant.input, state: grant.state });
  grant.outbox.release();
}

function historyIsLong(): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength > MAX_HISTORY_EVENTS;
}
