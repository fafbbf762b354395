// One permission set's session cut-offs (`aws.revoke_sessions`): the only writer of our Deny
// statements in its inline policy. Grants hand it their ends (a signal, with start); it writes
// them in rounds, provisions the permission set again to each account whose statements changed,
// tells each grant, puts them on record, and prunes each statement once the sessions it denies
// have all ended. It ends when no statement of ours is left.
//
// Nothing handed in waits for a round that cannot finish: a round that fails is tried again with
// everything that arrived meanwhile, the accounts already provisioned are not done again, and a
// long history goes on in a new run between any two tries, carrying all of it.
import { condition, continueAsNew, getExternalWorkflowHandle, log, proxyActivities, setHandler, type SignalDefinition, sleep, workflowInfo } from '@temporalio/workflow';
import type { CutoffsWritten, SessionActivities } from '../activities/sessions';
import type { AuditRecord } from '../domain/audit';
import type { SessionCutoff } from '../domain/sessions';
import { auditing } from './grant/calls';
import { type SessionCutoffRequest, sessionCutoffSignal, sessionRevocationFailedSignal, sessionsAppliedQuery, sessionsRevokedSignal } from './messages';
import { sessionsWorkflow11 } from './sessions-1.1';
import { versions } from './versions';

export interface SessionsInput {
  permissionSetArn: string;
  /** Whose credentials reach the instance: the latest hand-in's tenant first (any configured tenant on the instance may write). */
  tenantId: string;
  /** Carried over by continue-as-new from here on. */
  pending?: SessionCutoffRequest[];
  nextPruneAt?: string | null;
  /** Accounts whose statements changed and that are not yet provisioned again. */
  unprovisioned?: string[];
  /** The longest session duration the permission set has had while this workflow ran: pruning waits for it. */
  longestSessionSeconds?: number;
  /** Cut-offs applied by this workflow, over all its runs. */
  applied?: number;
  /** A run goes on in a new one past this many history events (tests set it low to see it happen). */
  historyLimit?: number;
}

export interface SessionsResult {
  applied: number;
}

// The write is a few calls, each of which may wait at the instance's pacer behind every deletion:
// the heartbeat, not the start-to-close timeout, tells a stalled attempt from a waiting one.
const { writeSessionCutoffs } = proxyActivities<SessionActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 2 },
});
// One account's provisioning takes seconds to a minute at AWS, after the pacer.
const { provisionSessionCutoffs } = proxyActivities<SessionActivities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 3 },
});

/** Accounts provisioned at once: AWS runs a permission set's provisionings side by side, and each waits at the pacer anyway. */
const PROVISIONS_AT_ONCE = 5;
/** Cut-offs one round takes on (the rest wait for the next round, or a new run). */
const MAX_ROUND = 500;

export async function sessionsWorkflow(input: SessionsInput): Promise<SessionsResult | void> {
  if (!versions.sessionsPerAccount()) return sessionsWorkflow11(input);
  const { permissionSetArn, historyLimit = 2000 } = input;
  const pending: SessionCutoffRequest[] = [...(input.pending ?? [])];
  setHandler(sessionCutoffSignal, (c) => void pending.push(c));
  let nextPruneAt = input.nextPruneAt ?? null;
  const unprovisioned = new Set(input.unprovisioned ?? []);
  let longestSessionSeconds = input.longestSessionSeconds ?? 0;
  let applied = input.applied ?? 0;
  setHandler(sessionsAppliedQuery, () => applied);
  let tenantIds = [input.tenantId];
  // Handed in and not yet settled: tried again, with whatever arrives meanwhile, until done.
  let batch: SessionCutoffRequest[] = [];
  const reported = new Set<string>();

  for (let failures = 0; ; ) {
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > historyLimit) {
      await continueAsNew<typeof sessionsWorkflow>({
        ...input,
        tenantId: tenantIds[0],
        pending: [...batch, ...pending],
        nextPruneAt,
        unprovisioned: [...unprovisioned],
        longestSessionSeconds,
        applied,
      });
    }
    if (batch.length === 0 && pending.length === 0 && unprovisioned.size === 0) {
      if (nextPruneAt === null) return { applied };
      await condition(() => pending.length > 0, Math.max(Date.parse(nextPruneAt) - Date.now(), 1));
    }
    // A round takes at most MAX_ROUND of them: its signals to the grants, its history and a
    // continue-as-new's input stay bounded in a flood.
    batch.push(...pending.splice(0, Math.max(0, MAX_ROUND - batch.length)));
    // The latest hand-in's tenant writes first (one still configured, should an earlier leave the instance).
    tenantIds = [...new Set([...batch.map((c) => c.tenantId).reverse(), ...tenantIds])];
    try {
      const written = await writeSessionCutoffs({ tenantIds, permissionSetArn, add: batch.map(({ userId, accountId, at }) => ({ userId, accountId, at })), longestSessionSeconds });
      longestSessionSeconds = written.sessionSeconds;
      nextPruneAt = written.nextPruneAt;
      for (const account of written.accountsToProvision) unprovisioned.add(account);
      const failed = await provisionEach(tenantIds, permissionSetArn, unprovisioned, written.written.filter((w) => !w.ended));
      // Whose accounts are provisioned are done, even if another account's provisioning failed.
      const done = batch.flatMap((c, i) => (unprovisioned.has(c.accountId) ? [] : [{ request: c, written: written.written[i] }]));
      batch = batch.filter((c) => unprovisioned.has(c.accountId));
      await settle(done, written);
      applied += done.length;
      if (failed) throw failed;
      failures = 0;
    } catch (err) {
      failures++;
      const message = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      log.warn('session cut-off failed; retrying', { permissionSetArn, failures, message });
      await Promise.all(batch.map((c) => tell(c, sessionRevocationFailedSignal, { message, ...(c.grant && { grant_id: c.grant.id }) })));
      await reportFailure(batch.filter((c) => c.grant && !reported.has(c.grant.id)), message);
      for (const c of batch) if (c.grant) reported.add(c.grant.id);
      await sleep(Math.min(60_000, 5_000 * failures));
    }
  }
}

/** Provisions the permission set again to each account, a few at a time; the first failure, once every one was tried. */
async function provisionEach(tenantIds: string[], permissionSetArn: string, unprovisioned: Set<string>, expect: SessionCutoff[]): Promise<Error | undefined> {
  let failure: Error | undefined;
  const accounts = [...unprovisioned].sort();
  for (let i = 0; i < accounts.length; i += PROVISIONS_AT_ONCE) {
    await Promise.all(
      accounts.slice(i, i + PROVISIONS_AT_ONCE).map((accountId) =>
        provisionSessionCutoffs({ tenantIds, permissionSetArn, accountId, expect: expect.filter((c) => c.accountId === accountId).map(({ userId, at }) => ({ userId, accountId, at })) }).then(
          () => void unprovisioned.delete(accountId),
          (err: Error) => void (failure ??= err),
        ),
      ),
    );
  }
  return failure;
}

/** Tells each grant, and puts each on record, with the moment actually written. */
async function settle(done: { request: SessionCutoffRequest; written: SessionCutoff }[], written: CutoffsWritten): Promise<void> {
  // A cut-off lies a little ahead of its deletion (the margin for clock skew): a grant is told once
  // it has passed, so a new grant of its key (which waits for this run) is never denied by it.
  const ahead = Math.max(0, ...done.map(({ request }) => Date.parse(request.at))) - Date.now();
  if (ahead > 0) await sleep(Math.min(ahead, 60_000));
  const at = new Date(Date.now()).toISOString();
  const records: AuditRecord[] = done.flatMap(({ request: c, written: w }) =>
    c.grant
      ? [
          {
            ...recordOf(c, 'sessions_revoked'),
            at,
            details: {
              user_id: c.userId,
              account_id: c.accountId,
              sessions_issued_before: w.at,
              ...(w.at !== c.at && { cut_off_at: c.at, bucket_seconds: written.bucketSeconds }),
            },
          },
        ]
      : [],
  );
  await Promise.all([
    ...done.map(({ request: c, written: w }) => tell(c, sessionsRevokedSignal, { at, sessions_issued_before: w.at, ...(c.grant && { grant_id: c.grant.id }) })),
    ...(records.length > 0 ? [auditing.writeAuditEvents(records)] : []),
  ]);
}

/** A grant's sessions could not be ended yet: on record once per grant in this run (the event's id is the same each time). */
async function reportFailure(batch: SessionCutoffRequest[], message: string): Promise<void> {
  const at = new Date(Date.now()).toISOString();
  const records = batch.flatMap((c) => (c.grant ? [{ ...recordOf(c, 'sessions_revocation_failed'), at, details: { user_id: c.userId, account_id: c.accountId, cut_off_at: c.at, message } }] : []));
  if (records.length > 0) await auditing.writeAuditEvents(records);
}

function recordOf(c: SessionCutoffRequest, event: 'sessions_revoked' | 'sessions_revocation_failed'): Omit<AuditRecord, 'at' | 'details'> {
  const grant = c.grant!;
  return {
    tenant_id: c.tenantId,
    event,
    actor: { type: 'system', id: 'sessions' },
    principal: grant.principal,
    target: grant.target,
    role: grant.role,
    grant_id: grant.id,
    access_request_id: null,
    occurrence: event,
  };
}

async function tell<T>(c: SessionCutoffRequest, signal: SignalDefinition<[T]>, arg: T): Promise<void> {
  if (!c.grant) return;
  // The grant may have closed meanwhile (it waits only so long): nothing to tell then.
  await getExternalWorkflowHandle(c.grant.workflowId).signal(signal, arg).catch(() => undefined);
}
